"""Shared fixtures: a real voxwire server with the real bundled voice, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.server_process import ServerProcess


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def live_server() -> Iterator[ServerProcess]:
    server = ServerProcess("--fault-marker", "VOXWIRE_TEST_FAULT").start()
    try:
        yield server
    finally:
        server.stop()
