"""Which engine work runs next, and what its results mean: a pure object, in the shape of vLLM's scheduler.

The worker drives it in a loop: ``schedule(now)`` gives the next batch (or None), the worker runs it on the
voice, and ``update(batch, outputs, now)`` turns the outputs into events for the streams (``fail`` does the
same for an item that could not be run). The session side calls ``add_stream``, ``add_text``, ``end_input``
and ``cancel``. The scheduler owns every piece of a stream's engine state; nothing else changes it. It is not
thread-safe (the worker holds a lock around every call) and never blocks, so unit tests drive it with a fake
clock and hand-made outputs.

Two kinds of work are batched separately:

- the *sentence stage* (phonemes -> text encoder -> durations -> prior) turns one text segment into latents;
- *window decoding* turns fixed-size windows of a latent into PCM. The scheduler plans the windows.

Each step picks one batch of one kind, by these rules:

1. A stream that has produced no audio yet goes first (time to first audio): its sentence stage, then its
   first window, which is small (``FIRST_WINDOW_FRAMES``). The windows after it ramp up, each twice the one
   before, to steady-sized ones (``STEADY_WINDOW_FRAMES``), and large ones (``LARGE_WINDOW_FRAMES``, less
   overhead per second of audio, a longer step) while the stream's listener holds at least
   ``large_window_ahead_s`` of audio, so that a long step cannot starve it. A first window, a window of the
   ramp, and a window whose listener is about to run dry are *urgent*: their flow runs only as far as they
   read (:class:`engine.windows.WindowSpec`), for the shortest step.
   One exception to first-audio-first: a playing stream whose audio runs out within ``run_dry_steps``
   engine steps (their measured mean) takes its next window before another stream's first sentence
   stage. A burst of new streams then cannot leave the ones already playing to run dry: a start waits a
   step longer, where the listener of a playing stream would have heard a gap.
2. Then windows by playback deadline: the moment the client would run out of audio, estimated as the time
   its first audio was produced plus the audio produced since (plus any gap in which it had run dry: its
   playback resumed with the audio that ended the gap). Earliest first (EDF), so no stream starves.
   A sentence is due when the stream's queued windows have played, and competes on that deadline; it is
   encoded once at most ``sentence_lead_frames`` frames are left to decode.
3. A stream more than ``max_ahead_s`` of audio ahead of its playback clock waits; capacity goes where it is
   needed. A stream whose connection holds too much unsent audio waits too (backpressure, ``AudioBudget``).
   ``asap`` streams (audio as fast as spare capacity allows: pre-rendering) have queues of their own and
   get a batch only when no realtime stream has work ready, so they never delay one by more than one step;
   among themselves they go by the same urgency, with no look-ahead. Admission does not count them; at most
   ``max_asap_streams`` are open at once.
4. Nothing waits to fill a batch: whatever is ready runs now, up to ``max_batch_*``. Under load, work piles
   up while a step runs, so the next batch is larger (continuous batching). A sentence batch takes only
   sentences of about the most urgent one's length (``sentence_length_ratio``), as it is padded to its
   longest; windows have fixed shapes and batch freely. A batch holds one voice.

Cost: every decision and every update is O(k log n) for a batch of k items over n streams. Ready streams sit
in two heaps per pace (windows by deadline, sentences by when their audio is due) with lazy invalidation: a
change to a stream bumps its version and pushes fresh entries, and stale ones are skipped when they surface.
Streams held by backpressure leave the heap until their budget has room; look-ahead needs no scan, as the
streams held by it are exactly the tail of the window heap.

Admission (:mod:`voxwire.engine.admission`) compares the streams that count with the measured throughput,
also without a scan.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import inf
from typing import TypeAlias, cast, overload

import numpy as np

from voxwire.engine.admission import Admission
from voxwire.engine.budget import AudioBudget
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.windows import WindowSpec, next_window_size
from voxwire.engine.work import (
    Audio,
    Batch,
    End,
    EngineEvent,
    Failed,
    Pause,
    Piece,
    Segment,
    SentenceBatch,
    SentenceItem,
    SentenceOutput,
    WindowBatch,
    WindowItem,
)

FIRST_WINDOW_FRAMES = 16
"""A stream's very first window by default on a CPU: small, so that its first audio comes sooner (a stream
may ask for another size, ``StreamSpec.first_window_frames``); the windows after it ramp up to steady ones.
On a CPU a burst of starts costs a first window each, so the smaller window brings first audio sooner."""
GPU_FIRST_WINDOW_FRAMES = 32
"""The default first window on a GPU: there a first window costs little (batched), so the smaller one buys no
sooner first audio, and its ramp's extra windows cost capacity near the knee (in ``bench/simulate.py``, at
3,000 streams on the ``h200-graphs`` costs: 1 underrun against none; ``docs/gpu-scale.md``)."""
STEADY_WINDOW_FRAMES = 64
"""Windows after the first: larger, as a step decodes more audio per unit of overhead."""
LARGE_WINDOW_FRAMES = 128
"""Windows for a stream whose listener holds enough audio: on a CPU, 10 to 20 % less compute per second of
audio than steady windows (with larger chunks of flow, docs/benchmarks.md), in steps twice as long."""
ASAP_WINDOW_FRAMES = 256
"""Windows of an ``asap`` stream after its first: no listener waits on them, so the largest, for the least
compute per second of audio (the decoder's context margin and per-step cost spread over more frames)."""
MAX_ROUNDS = 64
"""Most windows one stream gives to a single batch."""
INITIAL_STEP_S = 0.05
"""The mean engine step assumed until steps are measured (a CPU's first windows take about this)."""
STEP_SMOOTHING = 0.2
"""Weight of each new step in the mean step time (an exponential average over the last ten or so)."""


@dataclass(frozen=True)
class SchedulerConfig:
    max_batch_windows: int = 8
    max_batch_sentences: int = 8
    max_ahead_s: float = 2.0
    """A stream this far ahead of its playback clock gets no more windows until the client catches up."""
    sentence_length_ratio: float = 2.0
    """Sentences batched together differ in text length by at most this factor, so that padding to the
    longest wastes at most about half of a batch's sentence-stage work."""
    sentence_lead_frames: int = STEADY_WINDOW_FRAMES
    """Encode a stream's next sentence once it has at most this many latent frames left to decode."""
    large_window_ahead_s: float = 1.0
    """A stream whose listener holds at least this much audio gets large windows."""
    run_dry_steps: float = 2.0
    """A playing stream whose listener runs out of audio within this many engine steps (their measured
    mean) goes before new streams' sentence stages, and its window is urgent. Two: the step that takes the
    window may start just as another thread's begins, and the window's own step must end in time."""
    admission_headroom: float = 0.8
    """Admit streams up to this fraction of the measured real-time capacity."""
    admission_grace_s: float = 2.0
    """An idle stream counts against capacity until this long after its audio has played (or it opened)."""
    capacity_window_s: float = 10.0
    """Throughput is measured over roughly this much recent compute time."""
    workers: int = 1
    """Compute threads drawing from this scheduler: capacity is what one of them measures, times this."""
    max_asap_streams: int = 8
    """Most ``asap`` streams open at once (they are not admitted by capacity)."""

    def __post_init__(self) -> None:
        if self.max_batch_windows < 1 or self.max_batch_sentences < 1:
            raise ValueError("batches need room for at least one item")
        if self.workers < 1:
            raise ValueError("a scheduler needs at least one worker")
        if self.max_asap_streams < 0:
            raise ValueError("max_asap_streams must be 0 or more")
        if self.run_dry_steps < 0:
            raise ValueError("run_dry_steps must be 0 or more")


@dataclass(frozen=True)
class StreamSpec:
    """What the scheduler needs to know of a stream when it opens."""

    voice: str
    sample_rate: int
    hop_length: int
    """Samples per latent frame of the voice."""
    params: SynthesisParams
    budget: AudioBudget | None = None
    asap: bool = False
    """Audio as fast as spare capacity allows, rather than paced to playback."""
    first_window_frames: int = FIRST_WINDOW_FRAMES
    """Latent frames of the stream's very first window."""

    def __post_init__(self) -> None:
        if self.first_window_frames < 1:
            raise ValueError(f"first_window_frames must be >= 1, got {self.first_window_frames}")


@dataclass(frozen=True)
class SchedulerStats:
    streams: int
    queued_texts: int
    queued_windows: int
    """Latent frames queued for decoding, in steady windows' worth."""
    paused_streams: int
    """Streams held because their connection has too much unsent audio."""
    capacity_streams: float
    """Streams the engine can keep in real time, from measured throughput (inf until measured or seeded)."""
    asap_streams: int = 0


@dataclass(slots=True)
class _Cursor:
    """A latent being cut into windows: the next one starts at ``start`` and is ``size`` frames long."""

    latent: Latent
    start: int
    size: int


@dataclass(slots=True)
class _Silence:
    """A pause still to hand out as windows of zeros: ``samples`` left of it."""

    samples: int


@dataclass(eq=False, slots=True)
class _Stream:
    key: int
    spec: StreamSpec
    created_at: float
    texts: deque[Segment | Piece | Pause] = field(default_factory=deque)
    """Text segments to speak, sentence pieces (ids) left from an earlier step, and pauses, in order."""
    latents: deque[_Cursor | _Silence] = field(default_factory=deque)
    """Latents (and pauses) whose windows are still to hand out, oldest first."""
    queued_frames: int = 0
    queued_samples: int = 0
    sentence_in_flight: bool = False
    windows_in_flight: int = 0
    samples_in_flight: int = 0
    playback_start: float | None = None
    """When the listener's playback started (its first audio), moved on by any gap where it ran dry: it runs
    out of audio at ``playback_start + produced_samples / sample_rate``."""
    produced_samples: int = 0
    input_ended: bool = False
    held: bool = False
    """Out of the window heap because its budget was exhausted."""
    version: int = 0

    @property
    def started(self) -> int:
        """1 once the stream has produced audio, else 0 (the first field of its urgency)."""
        return 0 if self.playback_start is None else 1

    def deadline(self) -> float:
        """When the client runs out of audio; before any audio, the time the stream was opened."""
        if self.playback_start is None:
            return self.created_at
        return self.playback_start + self.produced_samples / self.spec.sample_rate

    def idle(self) -> bool:
        """Nothing queued and nothing in flight: once input has ended, the stream is complete."""
        return not (self.texts or self.latents or self.sentence_in_flight or self.windows_in_flight)

    def next_text(self) -> Segment | Piece:
        """The text at the front of the queue: never a pause, which goes to the windows as it gets there
        (``Scheduler._queue_pauses``)."""
        head = self.texts[0]
        assert not isinstance(head, Pause), "a pause at the front of the text"
        return head

    def relaxed(self, now: float, large_ahead_s: float) -> bool:
        """No listener waits on the stream's next window: an asap stream, or one whose listener holds at
        least ``large_ahead_s`` of audio (never before its first audio)."""
        if self.playback_start is None:
            return False
        return self.spec.asap or self.deadline() - now >= large_ahead_s

    def take_window(self, relaxed: bool, running_dry: bool = False) -> WindowItem:
        """The next window of the oldest latent: its first window as planned, then a ramp (each window
        twice the one before) up to steady ones, or while ``relaxed`` large (the largest for an asap
        stream). Urgent (the flow only as far as it reads) before the first audio, on the ramp, and while
        the listener is ``running_dry``."""
        cursor = self.latents[0]
        if isinstance(cursor, _Silence):
            return self._take_silence(cursor)
        start = cursor.start
        size = cursor.size
        if relaxed and size <= STEADY_WINDOW_FRAMES:  # no listener waits: no ramp either
            size = ASAP_WINDOW_FRAMES if self.spec.asap else LARGE_WINDOW_FRAMES
        end = min(start + size, cursor.latent.frames)
        samples = (end - start) * self.spec.hop_length
        ramp = size < STEADY_WINDOW_FRAMES
        spec = WindowSpec(start, end, relaxed, urgent=not self.started or ramp or running_dry)
        item = WindowItem(self.key, cursor.latent, spec, samples)
        cursor.start, cursor.size = end, next_window_size(size, STEADY_WINDOW_FRAMES)
        if end == cursor.latent.frames:
            self.latents.popleft()
        self.queued_frames -= end - start
        self.queued_samples -= samples
        self.samples_in_flight += samples
        return item

    def _take_silence(self, silence: _Silence) -> WindowItem:
        """At most a large window's worth of the pause: whole frames of it, and then the exact rest."""
        hop = self.spec.hop_length
        samples = min(silence.samples, LARGE_WINDOW_FRAMES * hop)
        frames = -(-samples // hop)
        silence.samples -= samples
        if not silence.samples:
            self.latents.popleft()
        self.queued_frames -= frames
        self.queued_samples -= samples
        self.samples_in_flight += samples
        return WindowItem(self.key, None, WindowSpec(0, frames), samples)


_Entry: TypeAlias = tuple[int, float, int, int]
"""A heap entry: (started, when its audio is due, stream key, the stream's version when pushed)."""


@dataclass(slots=True)
class _Queues:
    """The ready streams of one pace: windows by deadline, sentences by when their audio is due."""

    windows: list[_Entry] = field(default_factory=list)
    sentences: list[_Entry] = field(default_factory=list)
    max_ahead_s: float = inf


class Scheduler:
    """Pure scheduling state for one engine worker; not thread-safe."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._streams: dict[int, _Stream] = {}
        self._realtime = _Queues(max_ahead_s=self.config.max_ahead_s)
        self._asap = _Queues()
        self._asap_streams = 0
        self._held: dict[AudioBudget, list[int]] = {}
        self._held_streams = 0
        self._queued_texts = 0
        self._queued_frames = 0
        self._step_s = INITIAL_STEP_S
        config = self.config
        self._admission = Admission(  # measured per compute thread: the headroom carries their number
            config.admission_headroom * config.workers, config.admission_grace_s, config.capacity_window_s
        )

    # -- streams (the session side) --------------------------------------------------------------------

    def add_stream(self, key: int, spec: StreamSpec, now: float) -> None:
        if key in self._streams:
            raise ValueError(f"stream {key} is already scheduled")
        if spec.asap and not self.admits_asap():
            raise ValueError(f"no room for another asap stream (at most {self.config.max_asap_streams})")
        stream = _Stream(key, spec, created_at=now)
        self._streams[key] = stream
        self._asap_streams += spec.asap
        self._refresh(stream)

    def add_text(self, key: int, text: str, offset: int = 0) -> None:
        """Queue a text segment to speak after the ones before it (``offset``: where it starts in all of
        the stream's text); ignored once the stream is gone (it was cancelled, or it failed and its
        ``Failed`` is on the way)."""
        self._append(key, Segment(text, offset))

    def add_pause(self, key: int, samples: int) -> None:
        """Queue ``samples`` of silence after the stream's text so far; ignored once the stream is gone."""
        if samples < 1:
            raise ValueError(f"a pause needs at least one sample, got {samples}")
        self._append(key, Pause(samples))

    def _append(self, key: int, item: Segment | Pause) -> None:
        """Queue the stream's next input; ignored once the stream is gone."""
        stream = self._streams.get(key)
        if stream is None:
            return
        if stream.input_ended:
            what = "a pause" if isinstance(item, Pause) else "text"
            raise ValueError(f"{what} for stream {key} after its input ended")
        stream.texts.append(item)
        self._queued_texts += 1
        self._refresh(stream)

    def end_input(self, key: int) -> list[EngineEvent]:
        """No more text for the stream: its ``End`` follows its last audio (at once if it has none)."""
        stream = self._streams.get(key)
        if stream is None:
            return []
        stream.input_ended = True
        return self._settle(stream)

    def cancel(self, key: int) -> None:
        """Drop the stream and its queued work now; results of its items in flight are ignored."""
        stream = self._streams.get(key)
        if stream is not None:
            self._remove(stream)

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, key: int) -> bool:
        return key in self._streams

    # -- the decision ----------------------------------------------------------------------------------

    def schedule(self, now: float, *, asap: bool = True, relax: bool = True) -> Batch | None:
        """The batch to run now, or None when nothing is runnable: realtime work first, then (unless
        ``asap`` is False) asap work. With ``relax`` False no window is relaxed (steady-sized, its flow in
        chunks), for a caller that keeps its steps short so that new streams need not wait long for it."""
        self._compact()
        self._release_held()
        realtime = self._batch_of(self._realtime, now, relax)
        if realtime is not None or not asap:
            return realtime
        return self._batch_of(self._asap, now, relax)

    @property
    def realtime_streams(self) -> int:
        return len(self._streams) - self._asap_streams

    def next_wakeup(self, now: float, *, asap: bool = True) -> float | None:
        """Seconds until a stream held back by look-ahead may run again (None: wait for new work); with
        ``asap`` False, for a caller that takes no asap work."""
        realtime = self._realtime
        if self._peek_window(realtime, now) is not None:
            return 0.0
        if asap and self._peek_window(self._asap, now) is not None:
            return 0.0
        if not realtime.windows:
            return None
        # _peek_window stopped at a valid entry: the earliest deadline beyond its look-ahead.
        _, due, _, _ = realtime.windows[0]
        return max(0.001, due - realtime.max_ahead_s - now)

    # -- results (the worker side) ---------------------------------------------------------------------

    @overload
    def update(self, batch: WindowBatch, outputs: Sequence[np.ndarray], now: float) -> list[EngineEvent]: ...

    @overload
    def update(
        self, batch: SentenceBatch, outputs: Sequence[SentenceOutput], now: float
    ) -> list[EngineEvent]: ...

    def update(
        self,
        batch: SentenceBatch | WindowBatch,
        outputs: Sequence[SentenceOutput] | Sequence[np.ndarray],
        now: float,
    ) -> list[EngineEvent]:
        """Take a batch's outputs, one per item (latents for a sentence, PCM for a window); the events they
        make, in order. Items of streams cancelled meanwhile are ignored."""
        if len(outputs) != len(batch.items):
            raise ValueError(f"{len(outputs)} outputs for a batch of {len(batch.items)} items")
        # The overloads pair each batch type with its outputs; the casts restate that pairing.
        if isinstance(batch, SentenceBatch):
            return self._sentences_done(batch, cast(Sequence[SentenceOutput], outputs))
        return self._windows_done(batch, cast(Sequence[np.ndarray], outputs), now)

    def fail(self, batch: Batch, item: SentenceItem | WindowItem, error: BaseException) -> list[EngineEvent]:
        """``item`` of ``batch`` could not be run: its stream fails and is dropped; others go on."""
        if not any(member is item for member in batch.items):
            raise ValueError("the failed item is not in the batch")
        stream = self._streams.get(item.stream)
        if stream is None:
            return []
        self._remove(stream)
        return [Failed(item.stream, f"synthesis failed: {type(error).__name__}")]

    # -- capacity --------------------------------------------------------------------------------------

    def record_step(self, busy_s: float, audio_s: float) -> None:
        """Feed the throughput estimate: ``audio_s`` of audio made in ``busy_s`` of compute."""
        self._admission.record_step(busy_s, audio_s)
        self._step_s += STEP_SMOOTHING * (busy_s - self._step_s)

    def seed_capacity(self, audio_per_busy_s: float) -> None:
        """Start the throughput estimate from a calibration rather than from nothing
        (:meth:`voxwire.engine.admission.Admission.seed`)."""
        self._admission.seed(audio_per_busy_s)

    def capacity_streams(self) -> float:
        """Streams the worker can keep in real time, from measured throughput (inf until measured or
        seeded)."""
        return self._admission.capacity_streams()

    def admits(self, now: float) -> bool:
        """Whether a new realtime stream fits in the measured capacity (:mod:`voxwire.engine.admission`)."""
        return self._admission.admits(now)

    def admits_asap(self) -> bool:
        """Whether another asap stream may open (they use spare capacity, up to ``max_asap_streams``)."""
        return self._asap_streams < self.config.max_asap_streams

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            streams=len(self._streams),
            queued_texts=self._queued_texts,
            queued_windows=-(-self._queued_frames // STEADY_WINDOW_FRAMES),
            paused_streams=self._held_streams,
            capacity_streams=self.capacity_streams(),
            asap_streams=self._asap_streams,
        )

    # -- batches ---------------------------------------------------------------------------------------

    def _batch_of(self, queues: _Queues, now: float, relax: bool) -> Batch | None:
        """The most urgent work of one pace: a sentence batch or a window batch, or None."""
        sentence = self._peek(queues.sentences)
        window = self._peek_window(queues, now)
        if sentence is None and window is None:
            return None
        if window is None:
            return self._sentence_batch(queues.sentences)
        # A new stream's stage goes first, unless a playing stream would run dry meanwhile.
        running_dry = sentence is not None and sentence[0] == 0 and window[0] == 1
        running_dry = running_dry and self._running_dry(self._stream(window), now, self._run_dry_s())
        if sentence is not None and sentence[:2] <= window[:2] and not running_dry:
            return self._sentence_batch(queues.sentences)
        return self._window_batch(queues, now, relax)

    def _run_dry_s(self) -> float:
        """A playing stream whose audio runs out within this many seconds is running dry."""
        return self.config.run_dry_steps * self._step_s

    @staticmethod
    def _running_dry(stream: _Stream, now: float, run_dry_s: float) -> bool:
        """Whether a listener plays the stream's audio as it comes and runs out within ``run_dry_s``, with
        its windows in flight (a batch's earlier ones, which a listener already dry plays from about now)
        counted. An ``asap`` stream's client takes audio as fast as it is made: it is never waited on so."""
        if not stream.started or stream.spec.asap:
            return False
        in_flight_s = stream.samples_in_flight / stream.spec.sample_rate
        return max(stream.deadline(), now) + in_flight_s - now < run_dry_s

    def _sentence_batch(self, heap: list[_Entry]) -> SentenceBatch:
        """The most urgent sentence, and the next most urgent ones of its voice and about its length."""
        lead = self._stream(heapq.heappop(heap))
        voice = lead.spec.voice
        length = _ids_estimate(lead.next_text())
        ratio = self.config.sentence_length_ratio
        items = [self._take_text(lead)]
        aside: list[_Entry] = []
        budget = 4 * self.config.max_batch_sentences  # entries looked at, so a decision stays O(k log n)
        while len(items) < self.config.max_batch_sentences and budget and self._peek(heap):
            budget -= 1
            entry = heapq.heappop(heap)
            stream = self._stream(entry)
            if (
                stream.spec.voice == voice
                and length / ratio <= _ids_estimate(stream.next_text()) <= length * ratio
            ):
                items.append(self._take_text(stream))
            else:
                aside.append(entry)
        for entry in aside:
            heapq.heappush(heap, entry)
        return SentenceBatch(voice, tuple(items))

    def _take_text(self, stream: _Stream) -> SentenceItem:
        text = stream.next_text()
        stream.texts.popleft()
        self._queued_texts -= 1
        stream.sentence_in_flight = True
        stream.version += 1  # out of both heaps while its sentence is in flight; update re-indexes it
        return SentenceItem(stream.key, text, stream.spec.params)

    def _window_batch(self, queues: _Queues, now: float, relax: bool) -> WindowBatch:
        """Most urgent windows first; a stream may give several windows while it stays within look-ahead.

        A stream that has produced no audio gives only its first window: that is enough to get audio out."""
        max_items = self.config.max_batch_windows
        heap = queues.windows
        chosen: list[_Stream] = []
        aside: list[_Entry] = []
        voice: str | None = None
        looks = 4 * max_items  # entries looked at, so a decision stays O(k log n)
        while len(chosen) < max_items and looks and self._peek_window(queues, now) is not None:
            looks -= 1
            entry = heapq.heappop(heap)
            stream = self._stream(entry)
            if voice is None or stream.spec.voice == voice:
                voice = stream.spec.voice
                chosen.append(stream)
            else:
                aside.append(entry)
        for entry in aside:
            heapq.heappush(heap, entry)
        assert voice is not None, "a window batch is made only when a window is ready"
        items: list[WindowItem] = []
        for stream in chosen:
            stream.version += 1  # out of both heaps while in flight; update re-indexes it
        run_dry_s = self._run_dry_s()
        for _ in range(MAX_ROUNDS):
            next_round: list[_Stream] = []
            for stream in chosen:
                relaxed = relax and stream.relaxed(now, self.config.large_window_ahead_s)
                item = stream.take_window(relaxed, self._running_dry(stream, now, run_dry_s))
                items.append(item)
                stream.windows_in_flight += 1
                self._queued_frames -= item.spec.frames
                if len(items) == max_items:
                    break
                if stream.latents and stream.started and self._room_ahead(stream, queues, now):
                    next_round.append(stream)
            chosen = next_round
            if not chosen or len(items) == max_items:
                break

        return WindowBatch(voice, tuple(items))

    def _room_ahead(self, stream: _Stream, queues: _Queues, now: float) -> bool:
        """Whether the stream stays within its look-ahead with its windows in flight counted too."""
        in_flight_s = (stream.produced_samples + stream.samples_in_flight) / stream.spec.sample_rate
        assert stream.playback_start is not None
        return stream.playback_start + in_flight_s - now < queues.max_ahead_s

    # -- results ---------------------------------------------------------------------------------------

    def _sentences_done(self, batch: SentenceBatch, outputs: Sequence[SentenceOutput]) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        for item, output in zip(batch.items, outputs, strict=True):
            stream = self._streams.get(item.stream)
            if stream is None:
                continue
            stream.sentence_in_flight = False
            if output.latent is not None:
                self._plan_windows(stream, output.latent)
            stream.texts.extendleft(reversed(output.rest))  # the item's other pieces go next
            self._queued_texts += len(output.rest)
            events += self._settle(stream)
        return events

    def _plan_windows(self, stream: _Stream, latent: Latent) -> None:
        """Queue a latent's windows, cut as they are taken (as ``plan_windows`` cuts them): the stream's
        very first window small (``first_window_frames``), all others steady."""
        first_of_stream = not stream.started and not stream.latents and not stream.windows_in_flight
        first = stream.spec.first_window_frames if first_of_stream else STEADY_WINDOW_FRAMES
        stream.latents.append(_Cursor(latent, 0, first))
        stream.queued_frames += latent.frames
        stream.queued_samples += latent.frames * stream.spec.hop_length
        self._queued_frames += latent.frames

    def _windows_done(
        self, batch: WindowBatch, outputs: Sequence[np.ndarray], now: float
    ) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        touched: dict[int, _Stream] = {}
        for item, pcm in zip(batch.items, outputs, strict=True):
            stream = self._streams.get(item.stream)
            if stream is None:
                continue
            stream.windows_in_flight -= 1
            stream.samples_in_flight -= item.samples
            if stream.playback_start is None:
                stream.playback_start = now
            elif stream.deadline() < now:
                # The listener ran dry (no text came, or the engine fell behind): its playback resumes
                # with this audio, so the playback clock moves on by the gap.
                stream.playback_start += now - stream.deadline()
            stream.produced_samples += len(pcm)
            if stream.spec.budget is not None:
                stream.spec.budget.add(len(pcm) / stream.spec.sample_rate)
            first = item.latent is not None and item.spec.start == 0  # a sentence's first window
            events.append(Audio(stream.key, pcm, item.latent.words if item.latent and first else ()))
            touched[stream.key] = stream
        for stream in touched.values():
            events += self._settle(stream)
        return events

    def _settle(self, stream: _Stream) -> list[EngineEvent]:
        """After a change: the stream's ``End`` if its input has ended and it is idle, else re-index it."""
        if stream.input_ended and stream.idle():
            self._remove(stream)
            return [End(stream.key)]
        self._refresh(stream)
        return []

    # -- indexes ---------------------------------------------------------------------------------------

    def _refresh(self, stream: _Stream) -> None:
        """Re-index a stream after any change: fresh heap entries where it is ready, admission counts."""
        stream.version += 1
        self._queue_pauses(stream)
        queues = self._asap if stream.spec.asap else self._realtime
        # A stream's windows run one batch at a time: with several compute threads, a second one taken while
        # the first is in flight could finish first (audio out of order) and run the flow on the same latent.
        if stream.latents and not stream.held and not stream.windows_in_flight:
            entry = (stream.started, stream.deadline(), stream.key, stream.version)
            heapq.heappush(queues.windows, entry)
        if (
            stream.texts
            and not stream.sentence_in_flight
            and stream.queued_frames <= self.config.sentence_lead_frames
        ):
            due = stream.deadline() + stream.queued_samples / stream.spec.sample_rate
            heapq.heappush(queues.sentences, (stream.started, due, stream.key, stream.version))
        if stream.spec.asap:
            return
        if stream.idle():
            self._admission.idle(stream.key, stream.deadline())
        else:
            self._admission.working(stream.key)

    def _queue_pauses(self, stream: _Stream) -> None:
        """Pauses at the front of the text go behind the stream's latents: they need no sentence stage,
        only their turn (once the sentence before them has its latent)."""
        texts = stream.texts
        while texts and isinstance(texts[0], Pause) and not stream.sentence_in_flight:
            pause = texts.popleft()
            assert isinstance(pause, Pause)
            self._queued_texts -= 1
            frames = -(-pause.samples // stream.spec.hop_length)
            stream.latents.append(_Silence(pause.samples))
            stream.queued_frames += frames
            stream.queued_samples += pause.samples
            self._queued_frames += frames

    def _compact(self) -> None:
        """Drop stale entries once they outnumber the live ones: the heaps stay O(streams)."""
        queues = (self._realtime, self._asap)
        for heap in [heap for q in queues for heap in (q.windows, q.sentences)]:
            if len(heap) > 64 + 4 * len(self._streams):
                heap[:] = [entry for entry in heap if self._valid(entry)]
                heapq.heapify(heap)

    def _remove(self, stream: _Stream) -> None:
        del self._streams[stream.key]
        self._asap_streams -= stream.spec.asap
        self._queued_texts -= len(stream.texts)
        self._queued_frames -= stream.queued_frames
        if stream.held:
            assert stream.spec.budget is not None
            keys = self._held[stream.spec.budget]
            keys.remove(stream.key)
            if not keys:
                del self._held[stream.spec.budget]
            self._held_streams -= 1
        self._admission.forget(stream.key)

    def _valid(self, entry: _Entry) -> bool:
        stream = self._streams.get(entry[2])
        return stream is not None and stream.version == entry[3]

    def _stream(self, entry: _Entry) -> _Stream:
        return self._streams[entry[2]]

    def _peek(self, heap: list[_Entry]) -> _Entry | None:
        """The heap's most urgent valid entry, stale ones dropped on the way."""
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _peek_window(self, queues: _Queues, now: float) -> _Entry | None:
        """The most urgent window-ready entry of one pace, left in its heap; streams whose budget is
        exhausted are held on the way. None when the most urgent stream left is beyond its look-ahead (and
        so are all after it). One loop with no helper calls: it runs once per window of every batch."""
        heap = queues.windows
        streams = self._streams
        max_ahead = queues.max_ahead_s
        while heap:
            entry = heap[0]
            started, due, key, version = entry
            stream = streams.get(key)
            if stream is None or stream.version != version:
                heapq.heappop(heap)
                continue
            budget = stream.spec.budget
            if budget is not None and budget.exhausted():
                budget.waiting = True  # before the second look: a release in between then wakes us
                if budget.exhausted():
                    heapq.heappop(heap)
                    stream.held = True
                    self._held_streams += 1
                    self._held.setdefault(budget, []).append(key)
                    continue
            if started and due - now >= max_ahead:
                return None
            return entry
        return None

    def _release_held(self) -> None:
        """Streams held by backpressure go back into the heap once their budget has room."""
        for budget in [b for b in self._held if not b.exhausted()]:
            budget.waiting = False
            for key in self._held.pop(budget):
                stream = self._streams[key]
                stream.held = False
                self._held_streams -= 1
                self._refresh(stream)


def _ids_estimate(source: Segment | Piece) -> int:
    """A queued item's size in ids, for bucketing: exact for a piece, about two per character for text."""
    return max(1, len(source.ids) if isinstance(source, Piece) else 2 * len(source.text))
