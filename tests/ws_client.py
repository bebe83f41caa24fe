"""Assertions and waits shared by the end-to-end tests (their client is ``voxwire.loadtest.recorder``)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

from voxwire.loadtest.recorder import StreamResult


def assert_contiguous(result: StreamResult) -> None:
    """Protocol guarantee 2 and the done counts."""
    assert result.done is not None
    offset = 0
    for seq, chunk in enumerate(result.chunks):
        assert chunk.seq == seq
        assert chunk.offset == offset
        offset += chunk.samples
    assert result.done.chunks == len(result.chunks)
    assert result.done.samples == offset


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll a server-side condition (e.g. its metrics) until it holds, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0  # refused: nothing listens
