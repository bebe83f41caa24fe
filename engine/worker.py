"""One engine per device: compute threads that run the scheduler's batches on the voices.

Each compute thread's loop is thin: take the lock, ``schedule``; release it and run the batch on its voice;
take it again, ``update``, and post the events to the asyncio loop. No thread changes the scheduler's state
itself. On a GPU one thread feeds the device; on a CPU there is one per core group (``workers``), all
drawing from the one scheduler, so its guarantees (first audio first, deadlines, admission) hold across them:
a stream with work in flight on one thread is out of the scheduler's queues until its results are in, so
no two threads ever work on the same stream.

Thread model: the asyncio loop thread calls ``open_stream``/``add_text``/``end_input``/``cancel`` and reads
events through each stream's :class:`~voxwire.engine.handle.StreamHandle`; the compute threads run torch.
All touch the scheduler only under ``self._lock``. Events cross to the loop with one
``call_soon_threadsafe`` per step, made while the lock is held, so the loop sees them in the order the
scheduler made them: a stream's ``End`` never overtakes its audio. torch releases the GIL inside its kernels,
so the loop keeps serving WebSockets while a batch runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from voxwire.engine.budget import AudioBudget
from voxwire.engine.errors import EngineBroken, Overloaded, UnknownVoice
from voxwire.engine.handle import StreamHandle
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.memory import hold_freed_memory, release_free_memory
from voxwire.engine.scheduler import (
    FIRST_WINDOW_FRAMES,
    LARGE_WINDOW_FRAMES,
    STEADY_WINDOW_FRAMES,
    Scheduler,
    SchedulerConfig,
    SchedulerStats,
    StreamSpec,
)
from voxwire.engine.voice import Voice, VoiceInfo
from voxwire.engine.windows import plan_windows
from voxwire.engine.words import word_timings
from voxwire.engine.work import (
    Audio,
    Batch,
    EngineEvent,
    Failed,
    Piece,
    Segment,
    SentenceBatch,
    SentenceOutput,
    WindowBatch,
)

log = logging.getLogger(__name__)

CALIBRATION_TEXT = "Before it takes any stream, the engine times this sentence once, as a first estimate."
"""What :meth:`EngineWorker.calibrate` speaks: one sentence of ordinary length (about 5 s of audio)."""

WARNED_STREAMS = 1024
BREAKER_FAILURES = 3
"""Failed items in a row after which the engine checks itself with a known-good sentence."""
RELEASE_INTERVAL_S = 10.0
"""Freed memory goes back to the OS at most this often, in idle moments."""

StepObserver = Callable[[str, int, float], None]
"""Called on the worker thread after each batch with its kind (``sentences``, ``windows``), its size and the
seconds it took."""

_B = TypeVar("_B", SentenceBatch, WindowBatch)


class EngineWorker:
    """Owns the voices on one device and serves every session's streams from ``workers`` threads."""

    def __init__(
        self,
        voices: Sequence[Voice],
        config: SchedulerConfig | None = None,
        *,
        on_step: StepObserver | None = None,
        on_death: Callable[[str], None] | None = None,
        workers: int = 1,
        threads: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        release_memory: Callable[[], object] = release_free_memory,
        release_interval_s: float = RELEASE_INTERVAL_S,
        first_window_frames: int = FIRST_WINDOW_FRAMES,
    ) -> None:
        if not voices:
            raise ValueError("an engine worker needs at least one voice")
        if workers < 1:
            raise ValueError(f"an engine needs at least one compute thread, got {workers}")
        self.workers = workers
        self.first_window = first_window_frames
        """A stream's first window when it asks for none (:func:`engine.build.default_first_window`)."""
        self.threads = threads or torch.get_num_threads()
        """torch's intra-op threads in each compute thread (None: what the constructing thread has)."""
        self._voices = {v.info.id: v for v in voices}
        self.default_voice = voices[0].info.id
        self._scheduler = Scheduler(config)
        self._lock = threading.Condition()
        self._handles: dict[int, StreamHandle] = {}
        """Open handles by stream key; touched on the loop thread only."""
        self._keys = itertools.count()
        self._on_step = on_step
        self._on_death = on_death
        """Called on the loop thread, with the reason, when the engine thread has died."""
        self.stopped_because: str | None = None
        """Why the engine thread stopped, once it has died; None while it runs."""
        self._failures_in_a_row = 0
        self._warned: OrderedDict[int, None] = OrderedDict()
        """Streams whose unknown phonemes were logged (most recent last, at most WARNED_STREAMS)."""
        self._clock = clock
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._release_memory = release_memory
        self._release_interval_s = release_interval_s
        self._released_at = time.monotonic()
        self._worked_since_release = False

    @property
    def voices(self) -> list[VoiceInfo]:
        return [v.info for v in self._voices.values()]

    def calibrate(self) -> float:
        """Seed admission with the default voice's throughput on one sentence, phonemized, encoded and
        decoded in windows as a stream's first sentence is. Blocking: call it from a thread, before
        :meth:`start`. Without it a cold engine admits every start until it has measured a second of work,
        so a flood of starts right after a restart all gets in. Returns audio seconds per compute second.
        """
        voice = self._voices[self.default_voice]
        self._speak_calibration(voice)  # untimed: shapes met for the first time cost their set-up
        started = time.perf_counter()  # as steps are timed (_serve)
        samples = self._speak_calibration(voice)
        rate = samples / voice.info.sample_rate / (time.perf_counter() - started)
        with self._lock:
            self._scheduler.seed_capacity(rate)
        return rate

    def _speak_calibration(self, voice: Voice) -> int:
        """Samples of the calibration text, spoken as a stream's first sentences are."""
        samples = 0
        for ids in voice.phonemize(CALIBRATION_TEXT).sentences:
            (latent,) = voice.encode([ids], [voice.default_params])
            for window in plan_windows(latent.frames, self.first_window, STEADY_WINDOW_FRAMES):
                samples += sum(len(pcm) for pcm in voice.decode_windows([(latent, window)]))
        return samples

    # -- lifecycle (loop thread) -----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        hold_freed_memory()  # steps reuse their memory; it goes back to the OS in idle moments
        self._threads = [
            threading.Thread(target=self._run, args=(index,), name=f"voxwire-engine-{index}", daemon=True)
            for index in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)

    def stats(self) -> SchedulerStats:
        with self._lock:
            return self._scheduler.stats()

    def first_window_bounds_ms(self) -> tuple[int, int, int]:
        """The smallest, default and largest first window of the default voice, in milliseconds of audio:
        from its smallest decoding shape to a large window."""
        model = self._voices[self.default_voice]
        frame_ms = model.hop_length * 1000 / model.info.sample_rate
        smallest = math.ceil(model.window_sizes[0] * frame_ms)
        return smallest, round(self.first_window * frame_ms), math.floor(LARGE_WINDOW_FRAMES * frame_ms)

    def first_window_frames(self, voice: str, ms: int) -> int:
        """The first window nearest ``ms`` of a voice's audio, in latent frames, within its bounds."""
        model = self._voices[voice]
        frames = round(ms * model.info.sample_rate / (1000 * model.hop_length))
        return min(max(frames, model.window_sizes[0]), LARGE_WINDOW_FRAMES)

    # -- the session side (loop thread) ----------------------------------------------------------------

    def open_stream(
        self,
        voice: str | None = None,
        speed: float = 1.0,
        budget: AudioBudget | None = None,
        *,
        asap: bool = False,
        first_window_frames: int | None = None,
    ) -> StreamHandle:
        """A new stream; raises ``UnknownVoice``, or ``Overloaded`` when the engine is at capacity (for an
        ``asap`` stream: at its limit of asap streams).

        ``asap``: audio as fast as spare capacity allows; ``first_window_frames``: latent frames of the
        stream's first window (smaller: sooner first audio, in a smaller first chunk; None: the engine's
        ``first_window``)."""
        voice_id = voice or self.default_voice
        model = self._voices.get(voice_id)
        if model is None:
            raise UnknownVoice(f"unknown voice {voice_id!r}; this server has {sorted(self._voices)}")
        defaults = model.default_params
        params = SynthesisParams(defaults.noise_scale, defaults.noise_w, defaults.length_scale / speed)
        first = self.first_window if first_window_frames is None else first_window_frames
        spec = StreamSpec(voice_id, model.info.sample_rate, model.hop_length, params, budget, asap, first)
        key = next(self._keys)
        with self._lock:
            if self.stopped_because is not None:
                raise Overloaded("the engine has stopped; this server is shutting down")
            now = self._clock()
            if asap and not self._scheduler.admits_asap():
                limit = self._scheduler.config.max_asap_streams
                raise Overloaded(f"this server's {limit} asap streams are all in use; retry shortly")
            if not asap and not self._scheduler.admits(now):
                raise Overloaded("the server is at capacity; retry shortly")
            self._scheduler.add_stream(key, spec, now)
        handle = StreamHandle(self, key, model.info.sample_rate, budget)
        self._handles[key] = handle
        return handle

    def add_text(self, key: int, text: str, offset: int = 0) -> None:
        """Queue a text segment; ``offset``: where it starts in all of the stream's text (word timings
        name characters there)."""
        with self._lock:
            self._scheduler.add_text(key, text, offset)
            self._lock.notify()

    def add_pause(self, key: int, samples: int) -> None:
        """Queue ``samples`` of silence (at the voice's rate) after the stream's text so far."""
        with self._lock:
            self._scheduler.add_pause(key, samples)
            self._lock.notify()

    def end_input(self, key: int) -> None:
        with self._lock:
            self._post(self._scheduler.end_input(key))

    def cancel(self, key: int) -> None:
        """Drop the stream's engine work; events of it already posted still reach its (closed) handle."""
        with self._lock:
            self._scheduler.cancel(key)
            self._lock.notify()
            if self._loop is not None:
                # Behind every event posted for this stream so far (they were posted under this lock).
                self._loop.call_soon_threadsafe(self._handles.pop, key, None)

    def wake(self) -> None:
        """Something the scheduler waits on changed outside it (a budget has room again)."""
        with self._lock:
            self._lock.notify()

    def _post(self, events: list[EngineEvent]) -> None:
        """With the lock held: hand events to the loop thread, in order."""
        if events and self._loop is not None:
            self._loop.call_soon_threadsafe(self._dispatch, events)

    def _dispatch(self, events: list[EngineEvent]) -> None:
        """On the loop thread: route events to their handles; a stream's last event closes its entry."""
        for event in events:
            handle = self._handles.get(event.stream)
            if handle is None:
                continue  # cancelled, and its budget already settled by the handle
            if not isinstance(event, Audio):
                del self._handles[event.stream]
            handle.deliver(event)

    def _die(self, reason: str) -> None:
        """A compute thread is ending: from now on no stream can be served, and the others stop too."""
        with self._lock:
            if self.stopped_because is not None:
                return
            self.stopped_because = reason
            self._stopping = True
            self._lock.notify_all()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._fail_every_stream, reason)

    def _fail_every_stream(self, reason: str) -> None:
        """On the loop thread: every open stream fails now, then ``on_death`` hears why."""
        handles, self._handles = self._handles, {}
        for key, handle in handles.items():
            handle.deliver(Failed(key, "synthesis failed: the engine stopped"))
        if self._on_death is not None:
            self._on_death(reason)

    # -- the worker thread -----------------------------------------------------------------------------

    def _run(self, index: int) -> None:
        """A compute thread. If one dies, every open stream fails at once and ``on_death`` reports it."""
        torch.set_grad_enabled(False)
        # Whether a new thread's OpenMP and MKL keep to a set_num_threads made in another thread depends on
        # the order the runtimes started in (a fresh thread has run a bmm on both cores of this machine after
        # the main thread set one): set it in each compute thread, so that none takes the others' cores.
        torch.set_num_threads(self.threads)
        try:
            self._serve(index)
        except BaseException as error:  # a dying engine thread is reported, whatever killed it
            log.critical("the engine thread stopped: %s: %s", type(error).__name__, error, exc_info=error)
            self._die(f"{type(error).__name__}: {error}")

    def _serve(self, index: int) -> None:
        while (batch := self._next_batch(index)) is not None:
            started = time.perf_counter()
            kind = "sentences" if isinstance(batch, SentenceBatch) else "windows"
            if isinstance(batch, SentenceBatch):
                events = self._isolated(batch, self._encode)
            else:
                events = self._isolated(batch, self._decode)
            elapsed = time.perf_counter() - started
            # Sentence steps make no audio, but their cost counts: capacity is audio per second of all work.
            samples = sum(len(event.pcm) for event in events if isinstance(event, Audio))
            audio_s = samples / self._voices[batch.voice].info.sample_rate
            with self._lock:
                self._scheduler.record_step(elapsed, audio_s)
                self._lock.notify_all()  # the batch's streams are schedulable again, maybe for another thread
            self._worked_since_release = True
            if self._on_step is not None:
                self._on_step(kind, len(batch.items), elapsed)

    def _next_batch(self, index: int) -> Batch | None:
        """Wait for the next batch to run (None: the engine is stopping).

        An idle moment of the first compute thread, after some work and at most every
        ``release_interval_s``, is spent handing freed memory back to the OS (:mod:`voxwire.engine.memory`),
        outside the lock so sessions are not held up.
        """
        while True:
            with self._lock:
                if self._stopping:
                    return None
                # With realtime streams open, the first thread keeps to short steps (no asap work, no
                # relaxed windows): a new stream's first audio then never waits behind a long step on
                # every thread.
                asap = index > 0 or self.workers == 1 or not self._scheduler.realtime_streams
                batch = self._scheduler.schedule(self._clock(), asap=asap, relax=asap)
                if batch is not None:
                    return batch
                release_in = self._release_in() if index == 0 else None
                if release_in is None or release_in > 0:
                    wakeup = self._scheduler.next_wakeup(self._clock(), asap=asap)
                    timeouts = [t for t in (wakeup, release_in) if t is not None]
                    self._lock.wait(timeout=min(timeouts) if timeouts else None)
                    continue
            self._released_at = time.monotonic()
            self._worked_since_release = False
            self._release_memory()

    def _release_in(self) -> float | None:
        """Seconds until freed memory may go back to the OS (None: no work since the last time)."""
        if not self._worked_since_release:
            return None
        return self._released_at + self._release_interval_s - time.monotonic()

    def _isolated(self, batch: _B, compute: Callable[[_B], Sequence[Any]]) -> list[EngineEvent]:
        """Run ``batch`` on its voice (``compute``: latents per sentence item, PCM per window item) and hand
        the outputs to the scheduler. When it fails, run each half on its own, down to the one item that
        fails (or to a size that fits in memory): that item's stream fails, the others go on."""
        try:
            outputs = compute(batch)
        except Exception as error:
            if len(batch.items) > 1:
                first, second = batch.halves()
                return self._isolated(first, compute) + self._isolated(second, compute)
            item = batch.items[0]
            if _out_of_memory(error):
                log.warning("engine stream %d: out of memory on its own (%s); it fails", item.stream, error)
            else:
                log.exception("engine %s step failed for stream %d", type(batch).__name__, item.stream)
            with self._lock:
                events = self._scheduler.fail(batch, item, error)
                self._post(events)
            if not _out_of_memory(error):
                self._count_failure(batch.voice)
            return events
        self._failures_in_a_row = 0
        with self._lock:
            events = self._scheduler.update(batch, outputs, self._clock())
            self._post(events)
        return events

    def _count_failure(self, voice_id: str) -> None:
        """A failure breaker. One client's text can fail its own stream again and again; a device that
        broke fails everything. After ``BREAKER_FAILURES`` failed items in a row, a known-good sentence
        (the voice's warm-up) decides which it is: if it fails too, the engine stops (``EngineBroken``)."""
        with self._lock:
            self._failures_in_a_row += 1
            failures = self._failures_in_a_row
            if failures < BREAKER_FAILURES:
                return
            self._failures_in_a_row = 0
        try:
            self._voices[voice_id].warm_up(rounds=1)
        except Exception as error:
            raise EngineBroken(
                f"{failures} steps failed in a row and a known-good sentence failed too"
            ) from error
        log.warning(
            "%d engine steps failed in a row, but a known-good sentence ran: the engine goes on", failures
        )

    def _encode(self, batch: SentenceBatch) -> list[SentenceOutput]:
        """Each item's first sentence piece through one batched sentence stage; its other pieces go back
        to the scheduler for later steps. Each latent carries the timings of the words it speaks."""
        voice = self._voices[batch.voice]
        pieces: list[list[Piece]] = []
        for item in batch.items:
            if isinstance(item.source, Segment):
                item_pieces, unknown = voice.pieces(item.source.text, item.source.offset)
                if unknown:
                    self._warn_unknown(item.stream, unknown)
                pieces.append(item_pieces)
            else:
                pieces.append([item.source])
        firsts = [(index, item_pieces[0]) for index, item_pieces in enumerate(pieces) if item_pieces]
        latents: list[Latent | None] = [None] * len(batch.items)
        if firsts:
            params = [batch.items[index].params for index, _ in firsts]
            encoded = voice.encode([list(piece.ids) for _, piece in firsts], params)
            for (index, piece), latent in zip(firsts, encoded, strict=True):
                latent.words = word_timings(piece.words, latent.durations.tolist(), voice.hop_length)
                latents[index] = latent
        return [
            SentenceOutput(latent, item_pieces[1:])
            for latent, item_pieces in zip(latents, pieces, strict=True)
        ]

    def _warn_unknown(self, stream: int, symbols: frozenset[str]) -> None:
        """Once per stream: text a voice cannot say in full is the client's, and must not flood the log."""
        with self._lock:
            if stream in self._warned:
                return
            self._warned[stream] = None
            if len(self._warned) > WARNED_STREAMS:
                self._warned.popitem(last=False)
        shown = ", ".join(repr(symbol) for symbol in sorted(symbols)[:8])
        log.warning("engine stream %d: the voice has no phoneme for %s; left out", stream, shown)

    def _decode(self, batch: WindowBatch) -> list[np.ndarray]:
        """PCM of each window: the voice decodes latents in one call; pauses are zeros."""
        jobs = [(item.latent, item.spec) for item in batch.items if item.latent is not None]
        decoded = iter(self._voices[batch.voice].decode_windows(jobs) if jobs else [])
        return [
            np.zeros(item.samples, np.int16) if item.latent is None else next(decoded) for item in batch.items
        ]


def _out_of_memory(error: BaseException) -> bool:
    """An allocation failed (on the GPU, or on the host): a batch that does not fit, not a broken engine."""
    return isinstance(error, torch.OutOfMemoryError | MemoryError)
