"""plan_windows cuts an utterance into a small first window, then a ramp to steady windows, each frame
once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.engine.windows import WindowSpec, plan_windows


@given(st.integers(1, 5000), st.integers(1, 100), st.integers(1, 200))
def test_windows_tile_the_frames(frames: int, first: int, steady: int) -> None:
    windows = plan_windows(frames, first, steady)
    assert windows[0] == WindowSpec(0, min(first, frames))
    assert windows[-1].end == frames
    for before, after in itertools.pairwise(windows):
        assert after.start == before.end
    sizes = [w.frames for w in windows[:-1]]
    for before, after in itertools.pairwise(sizes):  # each twice the one before until steady, then steady
        assert after == (min(2 * before, steady) if before < steady else steady)
    assert all(0 < w.frames <= max(first, steady) for w in windows)


def test_defaults_are_16_then_a_ramp_to_64() -> None:
    assert plan_windows(200) == [
        WindowSpec(0, 16),
        WindowSpec(16, 48),
        WindowSpec(48, 112),
        WindowSpec(112, 176),
        WindowSpec(176, 200),
    ]
    assert plan_windows(5) == [WindowSpec(0, 5)]


@pytest.mark.parametrize("args", [(0, 32, 64), (10, 0, 64), (10, 32, 0)])
def test_rejects_empty_sizes(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        plan_windows(*args)
