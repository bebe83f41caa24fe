"""How an utterance's latent frames are cut into windows for streaming decode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class WindowSpec:
    """The latent frames [start, end) whose audio one window produces (made per window: slotted, not
    frozen, as that costs half as much; never changed once made)."""

    start: int
    end: int
    relaxed: bool = False
    """No listener is waiting on this window (an asap stream, or one whose listener holds enough audio), so
    the voice may take a longer step for less compute in all: it runs the flow to the end of the sentence
    at once rather than in chunks (:meth:`engine.voice.Voice.decode_windows`)."""
    urgent: bool = False
    """A listener with nothing to play waits on this window (a stream's first audio), so the voice keeps
    its step as short as it can: the flow runs only as far as this window reads."""

    @property
    def frames(self) -> int:
        return self.end - self.start


def next_window_size(size: int, steady: int) -> int:
    """The window after one of ``size`` frames: twice as large while smaller than ``steady`` (the ramp after
    a small first window), else steady."""
    return min(2 * size, steady) if size < steady else steady


def plan_windows(frames: int, first: int = 16, steady: int = 64) -> list[WindowSpec]:
    """A small first window (so the first audio comes sooner), then a ramp, each window twice the one
    before, up to steady windows; the last may be short. The scheduler cuts a stream's first sentence so."""
    if frames < 1 or first < 1 or steady < 1:
        raise ValueError(f"need frames, first and steady >= 1, got {frames}, {first}, {steady}")
    windows = [WindowSpec(0, min(first, frames))]
    size = first
    while windows[-1].end < frames:
        start = windows[-1].end
        size = next_window_size(size, steady)
        windows.append(WindowSpec(start, min(start + size, frames)))
    return windows
