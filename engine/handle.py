"""One stream's handle on the engine, for the asyncio loop thread: text in, audio blocks out.

    handle = worker.open_stream(voice, speed, budget)
    handle.add_text("Hello there.")
    handle.end_input()
    async for pcm in handle:     # int16 blocks at handle.sample_rate, in order
        ...                      # ends after the last block; raises EngineError if synthesis failed
    # or: async for block in handle.blocks(): block.pcm, block.words (word timings, engine.work.Audio)

``cancel`` drops the stream's queued work and its unread audio at once. The handle talks to the worker only
through the worker's public methods; the worker hands it events through :meth:`StreamHandle.deliver`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import numpy as np

from voxwire.engine.budget import AudioBudget
from voxwire.engine.errors import EngineError
from voxwire.engine.work import Audio, End, EngineEvent, Failed

if TYPE_CHECKING:
    from voxwire.engine.worker import EngineWorker


class StreamHandle:
    def __init__(self, worker: EngineWorker, key: int, sample_rate: int, budget: AudioBudget | None) -> None:
        self.key = key
        self.sample_rate = sample_rate
        self._worker = worker
        self._budget = budget
        self._events: asyncio.Queue[EngineEvent] = asyncio.Queue()
        """Bounded by the engine: it makes no more audio than look-ahead and the budget allow."""
        self._closed = False

    def add_text(self, text: str, offset: int = 0) -> None:
        """Queue a text segment (a sentence or fragment) to speak after the ones before it; ``offset``:
        where it starts in all of the stream's text (the characters word timings name)."""
        self._worker.add_text(self.key, text, offset)

    def add_pause(self, seconds: float) -> None:
        """Queue silence after the text so far, to the nearest sample (nothing for under half a sample)."""
        samples = round(seconds * self.sample_rate)
        if samples:
            self._worker.add_pause(self.key, samples)

    def end_input(self) -> None:
        """No more text: the stream ends once everything queued is spoken."""
        self._worker.end_input(self.key)

    def cancel(self) -> None:
        """Stop now: queued work and unread audio are dropped; a batch in flight finishes, unheard."""
        if self._closed:
            return
        self._closed = True
        while not self._events.empty():
            self._drop(self._events.get_nowait())
        self._worker.cancel(self.key)

    def deliver(self, event: EngineEvent) -> None:
        """The worker's next event for this stream (on the loop thread)."""
        if self._closed:
            self._drop(event)  # made before the cancel reached the engine: give its budget back
            return
        self._events.put_nowait(event)

    def __aiter__(self) -> StreamHandle:
        return self

    async def __anext__(self) -> np.ndarray:
        return (await self.next_block()).pcm

    def blocks(self) -> AsyncIterator[Audio]:
        """The stream's audio blocks with their word timings (:class:`Audio`), in order."""
        return _Blocks(self)

    async def next_block(self) -> Audio:
        """The next audio block; raises ``StopAsyncIteration`` after the last, ``EngineError`` on failure."""
        event = await self._events.get()
        match event:
            case Audio(pcm=pcm):
                self._release(pcm)
                return event
            case End():
                self._closed = True
                raise StopAsyncIteration
            case Failed(reason=reason):
                self._closed = True
                raise EngineError(reason)

    def _drop(self, event: EngineEvent) -> None:
        if isinstance(event, Audio):
            self._release(event.pcm)

    def _release(self, pcm: np.ndarray) -> None:
        """Audio left the engine's buffer (read, or dropped): its budget goes back to the connection."""
        if self._budget is not None and self._budget.release(len(pcm) / self.sample_rate):
            self._worker.wake()


class _Blocks:
    """``async for block in handle.blocks()``: the handle's :class:`Audio` events."""

    def __init__(self, handle: StreamHandle) -> None:
        self._handle = handle

    def __aiter__(self) -> _Blocks:
        return self

    async def __anext__(self) -> Audio:
        return await self._handle.next_block()
