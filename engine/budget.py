"""Unsent audio allowed for one connection, shared by its streams, counted without a lock.

The engine thread adds what it makes (``add``); the asyncio loop thread subtracts what the connection reads
or drops (``release``). Each side writes only its own counter, so neither takes a lock: the scheduler reads
both and sees the balance at most one step stale, which is why the limit is a threshold, not an exact cap.

The engine holds a connection's streams while its budget is exhausted and sets ``waiting``; ``release``
answers True when the engine should be woken (it is waiting and the budget has room again), so a chunk read
takes no lock unless it is the one that unblocks the engine.
"""

from __future__ import annotations


class AudioBudget:
    def __init__(self, limit_s: float) -> None:
        if limit_s < 0:
            raise ValueError(f"an audio budget needs limit_s >= 0, got {limit_s}")
        self.limit_s = limit_s
        self.waiting = False
        """Set by the engine thread when it holds streams because this budget is exhausted."""
        self._made_s = 0.0  # written by the engine thread only
        self._released_s = 0.0  # written by the loop thread only

    @property
    def buffered_s(self) -> float:
        return self._made_s - self._released_s

    def exhausted(self) -> bool:
        return self.buffered_s >= self.limit_s

    def add(self, seconds: float) -> None:
        """Audio made for this connection (engine thread)."""
        self._made_s += seconds

    def release(self, seconds: float) -> bool:
        """Audio read or dropped (loop thread); True when the engine waits on this budget and may go on."""
        self._released_s += seconds
        return self.waiting and not self.exhausted()
