"""One engine worker per device: it owns the voices, runs the scheduler's batches in its own thread, and
hands audio back to the asyncio loop. Sessions submit text and await audio; they never touch the model.

Thread model: the asyncio loop thread calls ``open_stream``/``add_text``/``cancel`` and reads audio; the
worker thread runs torch. Both sides touch the scheduler only under ``self._cond``; results cross back to the
loop with ``call_soon_threadsafe``. torch releases the GIL inside its kernels, so the loop keeps serving
WebSockets while a batch runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.memory import release_free_memory
from voxwire.engine.scheduler import Batch, Scheduler, SchedulerConfig, StreamWork, WorkKind
from voxwire.engine.voice import Voice, VoiceInfo
from voxwire.engine.windows import WindowSpec, plan_windows

log = logging.getLogger(__name__)

RELEASE_INTERVAL_S = 10.0
"""Freed memory goes back to the OS at most this often, in idle moments."""


class EngineError(Exception):
    """Synthesis failed for one stream; other streams are unaffected."""


class UnknownVoice(EngineError):
    pass


class Overloaded(EngineError):
    """The worker cannot take another stream in real time right now."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AudioBudget:
    """Unsent audio (seconds) allowed for one connection; generation for its streams pauses above it."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._buffered_s = 0.0
        self._lock = threading.Lock()

    @property
    def buffered_s(self) -> float:
        return self._buffered_s

    def add(self, seconds: float) -> None:
        """The worker adds what it makes; the loop thread subtracts what is read or dropped."""
        with self._lock:
            self._buffered_s += seconds

    def exhausted(self) -> bool:
        return self._buffered_s >= self.limit_s


@dataclass(frozen=True)
class WindowJob:
    latent: Latent
    spec: WindowSpec
    samples: int


@dataclass(frozen=True)
class WorkerStats:
    streams: int
    queued_segments: int
    queued_windows: int
    paused_streams: int
    capacity_streams: float
    batches: int


_END = object()


class EngineStream:
    """One utterance's handle on the worker. Use from the asyncio loop thread only."""

    def __init__(self, worker: EngineWorker, work: StreamWork, params: SynthesisParams) -> None:
        self._worker = worker
        self._work = work
        self.params = params
        self.sample_rate = work.sample_rate
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._input_ended = False
        self._end_posted = False
        self._closed = False

    @property
    def key(self) -> int:
        return self._work.key

    def add_text(self, segment: str) -> None:
        """Queue one text segment (a sentence or fragment) to speak after the ones before it."""
        if self._input_ended:
            raise RuntimeError("text after end_input")
        self._worker._add_segment(self._work, segment)

    def end_input(self) -> None:
        """No more text: the stream ends once everything queued is spoken."""
        self._worker._end_input(self)

    def cancel(self) -> None:
        """Drop queued work now; a batch in flight finishes but its output for this stream is discarded."""
        if self._closed:
            return
        self._closed = True
        while not self._queue.empty():
            self._release(self._queue.get_nowait())
        self._worker._remove(self)

    async def read(self) -> np.ndarray | None:
        """The next PCM16 block in order, None at the end; raises EngineError if synthesis failed."""
        item = await self._queue.get()
        if item is _END:
            self._close_normally()
            return None
        if isinstance(item, BaseException):
            self.cancel()
            raise item
        assert isinstance(item, np.ndarray)
        self._release(item)
        return item

    def _release(self, item: object) -> None:
        """Audio left the engine's buffer (read, or dropped by cancel): give its budget back."""
        budget = self._work.budget
        if budget is not None and isinstance(item, np.ndarray):
            budget.add(-len(item) / self.sample_rate)
            self._worker._wake()

    def _close_normally(self) -> None:
        if not self._closed:
            self._closed = True
            self._worker._remove(self)

    # -- called on the loop thread by the worker --------------------------------------------------------

    def _deliver(self, item: object) -> None:
        if self._closed:
            self._release(item)  # made before the cancel reached the worker: give its budget back
            return
        self._queue.put_nowait(item)


class EngineWorker:
    """Owns the voices on one device and serves every session's streams from one thread."""

    def __init__(
        self,
        voices: Sequence[Voice],
        config: SchedulerConfig | None = None,
        *,
        fault_marker: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        release_memory: Callable[[], object] = release_free_memory,
        release_interval_s: float = RELEASE_INTERVAL_S,
    ) -> None:
        if not voices:
            raise ValueError("an engine worker needs at least one voice")
        self._voices = {v.info.id: v for v in voices}
        self._default_voice = voices[0].info.id
        self._scheduler = Scheduler(config)
        self._cond = threading.Condition()
        self._streams: dict[int, EngineStream] = {}
        self._keys = itertools.count()
        self._clock = clock
        self._fault_marker = fault_marker
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._batches = 0
        self._release_memory = release_memory
        self._release_interval_s = release_interval_s
        self._released_at = time.monotonic()
        self._batches_at_release = 0
        self.on_batch: Callable[[WorkKind, int, float], None] | None = None
        """Observer for metrics: called on the worker thread after each batch with its kind, its size and
        the seconds it took."""

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def voices(self) -> list[VoiceInfo]:
        return [v.info for v in self._voices.values()]

    @property
    def default_voice(self) -> str:
        return self._default_voice

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="voxwire-engine", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def stats(self) -> WorkerStats:
        with self._cond:
            segments, windows = self._scheduler.queue_depth()
            return WorkerStats(
                streams=len(self._scheduler),
                queued_segments=segments,
                queued_windows=windows,
                paused_streams=self._scheduler.paused(),
                capacity_streams=self._scheduler.capacity_streams(),
                batches=self._batches,
            )

    # -- the session side (loop thread) ----------------------------------------------------------------

    def open_stream(
        self, voice: str | None = None, speed: float = 1.0, budget: AudioBudget | None = None
    ) -> EngineStream:
        voice_id = voice or self._default_voice
        model = self._voices.get(voice_id)
        if model is None:
            raise UnknownVoice(f"unknown voice {voice_id!r}; this server has {sorted(self._voices)}")
        defaults = model.default_params
        params = SynthesisParams(defaults.noise_scale, defaults.noise_w, defaults.length_scale / speed)
        with self._cond:
            if not self._scheduler.admits(self._clock()):
                raise Overloaded("the server is at capacity; retry shortly", retry_after_s=1.0)
            work = StreamWork(
                key=next(self._keys),
                voice=voice_id,
                sample_rate=model.info.sample_rate,
                created_at=self._clock(),
                budget=budget,
            )
            self._scheduler.add_stream(work)
            stream = EngineStream(self, work, params)
            self._streams[work.key] = stream
        return stream

    def _add_segment(self, work: StreamWork, segment: str) -> None:
        with self._cond:
            if not work.cancelled:
                self._scheduler.add_segment(work.key, segment)
                self._cond.notify()

    def _remove(self, stream: EngineStream) -> None:
        with self._cond:
            self._scheduler.remove_stream(stream.key)
            self._streams.pop(stream.key, None)
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _end_input(self, stream: EngineStream) -> None:
        with self._cond:
            stream._input_ended = True
            self._post_end_if_finished(stream._work)

    def _post_end_if_finished(self, work: StreamWork) -> None:
        """With the lock held: post the end marker once input has ended and no work is queued or in flight.

        Audio and the end marker both go through ``call_soon_threadsafe`` while the lock is held, so the
        loop receives them in the order the scheduler saw them: the end never overtakes audio.
        """
        stream = self._streams.get(work.key)
        if stream is None or stream._end_posted or not stream._input_ended or not work.idle():
            return
        stream._end_posted = True
        self._post(work, _END)

    # -- the worker thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while (batch := self._next_batch()) is not None:
            self._batches += 1
            started = time.perf_counter()
            if batch.kind is WorkKind.SENTENCES:
                self._run_sentences(batch.voice, batch.items)
                audio_s = 0.0  # its cost still counts: capacity is audio made per second of all work
            else:
                audio_s = self._run_windows(batch.voice, batch.items)
            elapsed = time.perf_counter() - started
            with self._cond:
                self._scheduler.record_step(elapsed, audio_s)
            if self.on_batch is not None:
                self.on_batch(batch.kind, len(batch.items), elapsed)

    def _next_batch(self) -> Batch | None:
        """Wait for the next batch to run (None: the worker is stopping).

        An idle moment, after some work and at most every ``release_interval_s``, is spent handing freed
        memory back to the OS (:mod:`engine.memory`), outside the lock so that sessions are not held up.
        """
        while True:
            with self._cond:
                if self._stopping:
                    return None
                batch = self._scheduler.next_batch(self._clock())
                if batch is not None:
                    return batch
                release_in = self._release_in()
                if release_in is None or release_in > 0:
                    wakeup = self._scheduler.next_wakeup(self._clock())
                    timeouts = [t for t in (wakeup, release_in) if t is not None]
                    self._cond.wait(timeout=min(timeouts) if timeouts else None)
                    continue
            self._released_at = time.monotonic()
            self._batches_at_release = self._batches
            self._release_memory()

    def _release_in(self) -> float | None:
        """Seconds until freed memory may go back to the OS (None: no work since the last time)."""
        if self._batches == self._batches_at_release:
            return None
        return self._released_at + self._release_interval_s - time.monotonic()

    def _run_sentences(self, voice_id: str, items: list[tuple[StreamWork, object]]) -> None:
        voice = self._voices[voice_id]
        try:
            windows = self._encode(voice, items)
        except Exception as error:
            if len(items) > 1:
                # Split to isolate the item that fails (or to fit in memory); the others still get served.
                half = len(items) // 2
                self._run_sentences(voice_id, items[:half])
                self._run_sentences(voice_id, items[half:])
                return
            stream, segment = items[0]
            log.exception("sentence stage failed for engine stream %d (segment %r)", stream.key, segment)
            self._fail(stream, error)
            return
        with self._cond:
            for (stream, _), jobs in zip(items, windows, strict=True):
                self._scheduler.sentence_done(stream, jobs)
                self._post_end_if_finished(stream)
            self._cond.notify()

    def _encode(self, voice: Voice, items: list[tuple[StreamWork, object]]) -> list[list[WindowJob]]:
        ids: list[list[int]] = []
        owners: list[int] = []
        params: list[SynthesisParams] = []
        for index, (stream, segment) in enumerate(items):
            assert isinstance(segment, str)
            if self._fault_marker and self._fault_marker in segment:
                raise RuntimeError("injected engine fault (test hook)")
            engine_stream = self._streams.get(stream.key)
            if engine_stream is None:
                continue
            for sentence in voice.phonemize(segment):
                ids.append(sentence)
                owners.append(index)
                params.append(engine_stream.params)
        jobs: list[list[WindowJob]] = [[] for _ in items]
        if not ids:
            return jobs
        for owner, latent in zip(owners, voice.encode(ids, params), strict=True):
            stream = items[owner][0]
            # Only a stream's very first window is small (sooner first audio); later sentences use steady
            # windows, which decode more audio per step.
            first_of_stream = not stream.started and not stream.windows and not jobs[owner]
            plan = plan_windows(latent.frames) if first_of_stream else plan_windows(latent.frames, first=64)
            for spec in plan:
                jobs[owner].append(WindowJob(latent, spec, spec.frames * voice.hop_length))
        return jobs

    def _run_windows(self, voice_id: str, items: list[tuple[StreamWork, object]]) -> float:
        voice = self._voices[voice_id]
        try:
            pcm = voice.decode_windows([(job.latent, job.spec) for _, job in items])  # type: ignore[attr-defined]
        except Exception as error:
            if len(items) > 1:
                half = len(items) // 2
                return self._run_windows(voice_id, items[:half]) + self._run_windows(voice_id, items[half:])
            log.exception("window decode failed for engine stream %d", items[0][0].key)
            with self._cond:
                items[0][0].windows_in_flight -= 1
            self._fail(items[0][0], error)
            return 0.0
        now = self._clock()
        audio_s = 0.0
        with self._cond:
            for (stream, _), block in zip(items, pcm, strict=True):
                self._scheduler.window_done(stream, len(block), now)
                audio_s += len(block) / stream.sample_rate
                if stream.budget is not None and not stream.cancelled:
                    stream.budget.add(len(block) / stream.sample_rate)
                self._post(stream, block)
            for stream, _ in items:
                self._post_end_if_finished(stream)
        return audio_s

    def _post(self, work: StreamWork, item: object) -> None:
        stream = self._streams.get(work.key)
        if stream is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(stream._deliver, item)

    def _fail(self, work: StreamWork, error: Exception) -> None:
        with self._cond:
            self._scheduler.remove_stream(work.key)
            self._post(work, EngineError(f"synthesis failed: {type(error).__name__}"))
