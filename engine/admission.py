"""Admission control: whether one more stream fits in what the engine has measured it can do in real time.

Throughput is measured in audio seconds made per compute second, over roughly ``window_s`` of recent work
(with several compute threads, per thread: ``headroom`` then carries their number).
Demand is the streams that count: those with work queued or in flight, and idle ones until ``grace_s``
after their audio has played out (or after they opened, before any audio), since their next text is likely
on its way and a burst of ``start``s must not all be admitted before any of them has text. A stream idle
for longer costs nothing, so a client holding idle streams cannot lock everyone else out.

Every call is O(log n) amortized: idle streams wait in a heap ordered by when they stop counting.
"""

from __future__ import annotations

import heapq
import math


class Admission:
    def __init__(self, headroom: float, grace_s: float, window_s: float) -> None:
        self.headroom = headroom
        self.grace_s = grace_s
        self.window_s = window_s
        self._working: set[int] = set()
        self._idle_until: dict[int, float] = {}
        self._expiry: list[tuple[float, int]] = []
        self._busy_s = 0.0
        self._audio_s = 0.0

    def working(self, key: int) -> None:
        """The stream has work queued or in flight."""
        self._working.add(key)
        self._idle_until.pop(key, None)

    def idle(self, key: int, played_out_at: float) -> None:
        """The stream has nothing to do; its listener has audio until ``played_out_at``."""
        self._working.discard(key)
        until = played_out_at + self.grace_s
        self._idle_until[key] = until
        heapq.heappush(self._expiry, (until, key))

    def forget(self, key: int) -> None:
        """The stream is gone (ended, cancelled or failed): it counts no more."""
        self._working.discard(key)
        self._idle_until.pop(key, None)

    def record_step(self, busy_s: float, audio_s: float) -> None:
        """Feed the throughput estimate: ``audio_s`` of audio made in ``busy_s`` of compute."""
        keep = max(0.0, 1.0 - busy_s / self.window_s)
        self._busy_s = self._busy_s * keep + busy_s
        self._audio_s = self._audio_s * keep + audio_s

    def seed(self, audio_per_busy_s: float) -> None:
        """A first estimate before any work is measured: as if one second of compute had made
        ``audio_per_busy_s`` seconds of audio. Measured steps replace it over ``window_s`` of work."""
        if not audio_per_busy_s > 0:
            raise ValueError(f"a seed needs audio per busy second > 0, got {audio_per_busy_s}")
        if self._busy_s < 1.0:
            self._busy_s, self._audio_s = 1.0, audio_per_busy_s

    def capacity_streams(self) -> float:
        """Streams the engine can keep in real time, with headroom (inf until 1 s of work is measured or a
        seed is given)."""
        if self._busy_s < 1.0:
            return math.inf
        return self._audio_s / self._busy_s * self.headroom

    def admits(self, now: float) -> bool:
        while self._expiry and self._expiry[0][0] <= now:
            until, key = heapq.heappop(self._expiry)
            if self._idle_until.get(key) == until:
                del self._idle_until[key]
        return len(self._working) + len(self._idle_until) < max(1.0, self.capacity_streams())
