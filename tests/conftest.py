"""Shared fixtures: a real voxwire server with the real bundled voice, started once per test session (with
its voice wrapped by tests/fault_server.py, so that a marker in text can make the engine fail)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401
import pytest
import torch

from voxwire.server.process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent

# hypothesis is imported above, at collection, for its pytest plugin's sake: the plugin imports it lazily at
# the end of a run, and on CPython 3.11.7 compiling a module that late (after the live-server tests) can fail
# with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905), failing the run.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def live_server() -> Iterator[ServerProcess]:
    server = ServerProcess(module="tests.fault_server", cwd=str(ROOT)).start()
    try:
        yield server
    finally:
        server.stop()
