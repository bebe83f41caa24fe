"""Frames waiting to be written to one WebSocket, in two lanes.

Audio (chunks, and the ``done`` that completes a stream, which must follow its chunks) waits in a bounded
lane: when the client reads slowly, producers wait here and, behind them, the engine pauses. Control frames
(the ``error`` and ``done`` that end a stream early, and the ``done`` that answers a cancel) jump ahead of
all audio, so a cancel is answered at once. Frames of a stream that was cancelled or failed are dropped
when they reach the head of the audio lane.

An ``error`` that ends no stream (a refused ``start``, text for a stream that is over) jumps ahead too,
unless frames of its stream id still wait in the audio lane (a stream that completed, its last chunks and
``done`` not yet sent, and a new ``start`` of the same id refused): then it queues behind them, so that a
client never sees an error for an id before the end of the stream that had it last.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass
from typing import Protocol


class Owner(Protocol):
    @property
    def stream_id(self) -> str: ...

    @property
    def dropped(self) -> bool:
        """True once the stream was cancelled or failed: its queued frames are not sent."""

    def sent(self, samples: int) -> None:
        """Called as a chunk of ``samples`` leaves the outbox for the socket."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    owner: Owner
    frame: bytes
    samples: int


@dataclass(frozen=True, slots=True)
class _Done:
    owner: Owner
    frame: bytes


@dataclass(frozen=True, slots=True)
class _Error:
    stream: str
    frame: bytes


class Outbox:
    def __init__(self, audio_capacity: int) -> None:
        if audio_capacity < 1:
            raise ValueError("audio_capacity must be at least 1")
        self._capacity = audio_capacity
        self._control: deque[bytes] = deque()
        self._audio: deque[_Chunk | _Done | _Error] = deque()
        self._queued: Counter[str] = Counter()
        """Frames in the audio lane per stream id."""
        self._errors_queued = 0
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def __len__(self) -> int:
        return len(self._control) + len(self._audio)

    @property
    def error_backlog(self) -> int:
        """Control frames and queued errors not yet sent (what a client that never reads piles up)."""
        return len(self._control) + self._errors_queued

    def put_control(self, frame: bytes) -> None:
        self._control.append(frame)
        self._ready.set()

    def put_error(self, stream: str | None, frame: bytes) -> None:
        """An error that ends no stream: at once, unless frames of ``stream`` wait (then behind them)."""
        if stream is None or not self._queued[stream]:
            self.put_control(frame)
            return
        self._audio.append(_Error(stream, frame))
        self._queued[stream] += 1
        self._errors_queued += 1
        self._ready.set()

    async def put_chunk(self, owner: Owner, frame: bytes, samples: int) -> None:
        """Wait for room in the audio lane, then queue a chunk behind the audio before it."""
        while len(self._audio) >= self._capacity:
            self._space.clear()
            await self._space.wait()
        self._audio.append(_Chunk(owner, frame, samples))
        self._queued[owner.stream_id] += 1
        self._ready.set()

    def put_done(self, owner: Owner, frame: bytes) -> None:
        """Queue a completed stream's ``done`` behind its chunks, even when the lane is full (one each)."""
        self._audio.append(_Done(owner, frame))
        self._queued[owner.stream_id] += 1
        self._ready.set()

    async def get(self) -> bytes:
        """The next frame to write: control first, then audio whose owner was not dropped."""
        while True:
            if self._control:
                return self._control.popleft()
            while self._audio:
                item = self._audio.popleft()
                self._space.set()
                stream = item.stream if isinstance(item, _Error) else item.owner.stream_id
                self._queued[stream] -= 1
                if not self._queued[stream]:
                    del self._queued[stream]
                if isinstance(item, _Error):
                    self._errors_queued -= 1
                    return item.frame
                if item.owner.dropped:
                    continue
                if isinstance(item, _Chunk):
                    item.owner.sent(item.samples)
                return item.frame
            self._ready.clear()
            await self._ready.wait()
