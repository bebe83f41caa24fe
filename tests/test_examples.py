"""The example agent (examples/agent.py) against the real server: a barge-in truncates its history to what
was heard."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

REPLY_START = "Sure, here is the plan for tomorrow."


def run_agent(url: str, *extra: str) -> list[str]:
    command = [sys.executable, str(ROOT / "examples" / "agent.py"), "--url", url, *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_barge_in_truncates_the_history_to_what_was_heard(live_server: ServerProcess) -> None:
    lines = run_agent(live_server.ws_url, "--interrupt-after", "3.0")
    heard = next(line for line in lines if line.startswith("heard: "))
    assistant = next(line for line in lines if line.strip().startswith("assistant: "))
    heard_text = heard.removeprefix("heard: ").strip("'\"")
    assert heard_text and REPLY_START.startswith(heard_text[: len(REPLY_START)])  # the reply's start ...
    assert len(heard_text) < 120  # ... and not all of it: about 2 s of speech
    assert assistant.strip() == f"assistant: {heard_text} —"
    assert any(line.startswith("  [") for line in lines)  # word timings were printed as they came


def test_without_a_barge_in_the_whole_reply_goes_into_the_history(live_server: ServerProcess) -> None:
    lines = run_agent(live_server.ws_url)  # stdin at its end: nobody presses Enter
    assert not any(line.startswith("heard: ") for line in lines)
    assistant = next(line for line in lines if line.strip().startswith("assistant: "))
    assert assistant.strip().startswith(f"assistant: {REPLY_START}") and assistant.strip().endswith("five.")
