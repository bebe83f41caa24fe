"""Which engine work runs next: a pure object, driven by the worker loop and by unit tests with a fake clock.

Two kinds of work are batched separately:

- the *sentence stage* (phonemes -> text encoder -> durations -> flow) turns one text segment into a latent;
- *window decoding* turns fixed-size windows of a latent into PCM.

Each step the scheduler picks one batch of one kind, by these rules:

1. A stream that has produced no audio yet goes first (time to first audio): its sentence stage, then its
   first window.
2. Then windows by playback deadline: the moment the client would run out of audio, estimated as the time
   its first audio was produced plus the audio produced since. Earliest first (EDF), so no stream starves.
3. A stream more than ``max_ahead_s`` of audio ahead of its playback clock waits; capacity goes where it is
   needed. A stream whose connection holds too much unsent audio waits too (backpressure).
4. Nothing waits to fill a batch: whatever is ready runs now, up to ``max_batch``. Under load, work piles
   up while a step runs, so the next batch is larger (continuous batching). A sentence batch takes only
   sentences of about the most urgent one's length (``sentence_length_ratio``), as it is padded to its
   longest; windows have fixed shapes and batch freely.

``cancel`` removes a stream's queued work at once; the worker drops results for cancelled streams that were
in flight. Admission control compares the demand (active streams) with the throughput the worker has
measured, in audio seconds per compute second.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


class Budget(Protocol):
    """Unsent audio allowed for one connection, shared by its streams."""

    def exhausted(self) -> bool: ...


@dataclass(frozen=True)
class SchedulerConfig:
    max_batch_windows: int = 8
    max_batch_sentences: int = 8
    max_ahead_s: float = 2.0
    """A stream this far ahead of its playback clock gets no more windows until the client catches up."""
    sentence_length_ratio: float = 2.0
    """Sentences batched together differ in text length by at most this factor, so that padding to the
    longest wastes at most about half of a batch's sentence-stage work."""
    sentence_lead_windows: int = 1
    """Encode a stream's next sentence once it has at most this many windows left to decode."""
    admission_headroom: float = 0.8
    """Admit streams up to this fraction of the measured real-time capacity."""
    admission_grace_s: float = 2.0
    """An idle stream counts against capacity until this long after its audio has played (or it opened)."""
    capacity_window_s: float = 10.0
    """Throughput is measured over roughly this much recent compute time."""


class WorkKind(Enum):
    SENTENCES = "sentences"
    WINDOWS = "windows"


@dataclass(eq=False)
class StreamWork:
    """The scheduler's view of one stream: what is queued for it and how far ahead its audio is."""

    key: int
    voice: str
    sample_rate: int
    created_at: float
    budget: Budget | None = None
    segments: deque[object] = field(default_factory=deque)
    windows: deque[object] = field(default_factory=deque)
    sentences_in_flight: int = 0
    windows_in_flight: int = 0
    first_audio_at: float | None = None
    produced_samples: int = 0
    cancelled: bool = False

    @property
    def started(self) -> bool:
        return self.first_audio_at is not None

    def deadline(self) -> float:
        """When the client runs out of audio; before any audio, the time the stream was opened."""
        if self.first_audio_at is None:
            return self.created_at
        return self.first_audio_at + self.produced_samples / self.sample_rate

    def idle(self) -> bool:
        """Nothing queued and nothing in flight: once input has ended, the stream is complete."""
        return (
            not self.segments
            and not self.windows
            and self.sentences_in_flight == 0
            and self.windows_in_flight == 0
        )


@dataclass(frozen=True)
class Batch:
    kind: WorkKind
    voice: str
    items: list[tuple[StreamWork, object]]
    """(stream, work item) pairs: a text segment for SENTENCES, a window job for WINDOWS."""


class Scheduler:
    """Pure scheduling state; not thread-safe (the worker guards it with a lock)."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._streams: dict[int, StreamWork] = {}
        self._busy_s = 0.0
        self._audio_s = 0.0

    # -- streams -------------------------------------------------------------------------------------

    def add_stream(self, stream: StreamWork) -> None:
        if stream.key in self._streams:
            raise ValueError(f"stream {stream.key} is already scheduled")
        self._streams[stream.key] = stream

    def remove_stream(self, key: int) -> StreamWork | None:
        """Cancel or disconnect: queued work goes at once; results in flight are dropped by the caller."""
        stream = self._streams.pop(key, None)
        if stream is not None:
            stream.cancelled = True
            stream.segments.clear()
            stream.windows.clear()
        return stream

    def add_segment(self, key: int, segment: object) -> None:
        self._streams[key].segments.append(segment)

    def __len__(self) -> int:
        return len(self._streams)

    def paused(self) -> int:
        """Streams with audio to make that wait because their connection holds too much unsent audio."""
        return sum(
            1 for s in self._streams.values() if s.windows and s.budget is not None and s.budget.exhausted()
        )

    def queue_depth(self) -> tuple[int, int]:
        """Queued (segments, windows) over all streams."""
        segments = sum(len(s.segments) for s in self._streams.values())
        windows = sum(len(s.windows) for s in self._streams.values())
        return segments, windows

    # -- results -------------------------------------------------------------------------------------

    def sentence_done(self, stream: StreamWork, windows: list[object]) -> None:
        stream.sentences_in_flight -= 1
        if not stream.cancelled:
            stream.windows.extend(windows)

    def window_done(self, stream: StreamWork, samples: int, now: float) -> None:
        stream.windows_in_flight -= 1
        if stream.cancelled:
            return
        if stream.first_audio_at is None:
            stream.first_audio_at = now
        stream.produced_samples += samples

    def record_step(self, busy_s: float, audio_s: float) -> None:
        """Feed the throughput estimate: ``audio_s`` of audio made in ``busy_s`` of compute."""
        keep = max(0.0, 1.0 - busy_s / self.config.capacity_window_s)
        self._busy_s = self._busy_s * keep + busy_s
        self._audio_s = self._audio_s * keep + audio_s

    # -- admission -----------------------------------------------------------------------------------

    def capacity_streams(self) -> float:
        """Streams the worker can keep in real time, from measured throughput (inf until measured)."""
        if self._busy_s < 1.0:
            return math.inf
        return self._audio_s / self._busy_s * self.config.admission_headroom

    def admits(self, now: float) -> bool:
        """Whether a new stream fits in the measured capacity.

        A stream counts while it has work, and until ``admission_grace_s`` after its audio has played out
        (or after it opened, before any audio): its text is likely on its way, and a burst of ``start``s
        must not all be admitted before any of them has text. A stream idle for longer costs nothing, so a
        client holding idle streams cannot lock everyone else out."""
        grace = self.config.admission_grace_s
        busy = sum(1 for s in self._streams.values() if not s.idle() or s.deadline() + grace > now)
        return busy < max(1.0, self.capacity_streams())

    # -- the decision --------------------------------------------------------------------------------

    def next_batch(self, now: float) -> Batch | None:
        """The batch to run now, or None when nothing is runnable."""
        sentence_ready = [s for s in self._streams.values() if self._wants_sentence(s)]
        window_ready = [s for s in self._streams.values() if self._wants_window(s, now)]
        if not sentence_ready and not window_ready:
            return None
        urgent_sentence = min(sentence_ready, key=self._sentence_urgency, default=None)
        urgent_window = min(window_ready, key=self._urgency, default=None)
        if urgent_window is None or (
            urgent_sentence is not None
            and self._sentence_urgency(urgent_sentence) <= self._urgency(urgent_window)
        ):
            return self._sentence_batch(sentence_ready, urgent_sentence.voice)  # type: ignore[union-attr]
        return self._window_batch(window_ready, urgent_window.voice, now)

    def next_wakeup(self, now: float) -> float | None:
        """Seconds until a stream held back by look-ahead may run again (None: wait for new work)."""
        held = [
            s.deadline() - self.config.max_ahead_s - now
            for s in self._streams.values()
            if s.windows and s.started and not (s.budget is not None and s.budget.exhausted())
        ]
        return max(0.001, min(held)) if held else None

    def _urgency(self, stream: StreamWork) -> tuple[int, float]:
        return (1 if stream.started else 0, stream.deadline())

    def _sentence_urgency(self, stream: StreamWork) -> tuple[int, float]:
        """A sentence's audio is needed once the stream's queued windows have played."""
        queued = _audio_s(stream, stream.windows)
        started, deadline = self._urgency(stream)
        return (started, deadline + queued)

    def _wants_sentence(self, stream: StreamWork) -> bool:
        if not stream.segments or stream.sentences_in_flight:
            return False
        return len(stream.windows) <= self.config.sentence_lead_windows

    def _wants_window(self, stream: StreamWork, now: float) -> bool:
        if not stream.windows:
            return False
        if stream.budget is not None and stream.budget.exhausted():
            return False
        return not (stream.started and stream.deadline() - now >= self.config.max_ahead_s)

    def _sentence_batch(self, ready: list[StreamWork], voice: str) -> Batch:
        """The most urgent sentence, and the next most urgent ones of about its length (a length bucket)."""
        chosen = sorted((s for s in ready if s.voice == voice), key=self._sentence_urgency)
        lead = _length(chosen[0].segments[0])
        ratio = self.config.sentence_length_ratio
        items: list[tuple[StreamWork, object]] = []
        for stream in chosen:
            if len(items) == self.config.max_batch_sentences:
                break
            if not lead / ratio <= _length(stream.segments[0]) <= lead * ratio:
                continue
            stream.sentences_in_flight += 1
            items.append((stream, stream.segments.popleft()))
        return Batch(WorkKind.SENTENCES, voice, items)

    def _window_batch(self, ready: list[StreamWork], voice: str, now: float) -> Batch:
        """Most urgent windows first; a stream may give several windows while it stays within look-ahead."""
        chosen = sorted((s for s in ready if s.voice == voice), key=self._urgency)
        items: list[tuple[StreamWork, object]] = []
        rounds = 0
        while len(items) < self.config.max_batch_windows and chosen and rounds < 64:
            rounds += 1
            next_round = []
            for stream in chosen:
                if len(items) == self.config.max_batch_windows:
                    break
                items.append((stream, stream.windows.popleft()))
                stream.windows_in_flight += 1
                if stream.windows and not stream.started:
                    continue  # one first window is enough to get audio out
                if stream.windows and stream.deadline() - now + self._queued_ahead(stream, items) < (
                    self.config.max_ahead_s
                ):
                    next_round.append(stream)
            chosen = next_round
        return Batch(WorkKind.WINDOWS, voice, items)

    def _queued_ahead(self, stream: StreamWork, items: list[tuple[StreamWork, object]]) -> float:
        """Audio seconds this batch already holds for ``stream``."""
        return _audio_s(stream, (job for s, job in items if s is stream))


def _length(segment: object) -> int:
    """A segment's size for bucketing: its characters (at least 1)."""
    return max(1, len(segment)) if isinstance(segment, Sized) else 1


def _audio_s(stream: StreamWork, jobs: Iterable[object]) -> float:
    """Seconds of audio that ``stream``'s window jobs will make."""
    return sum(getattr(job, "samples", 0) for job in jobs) / stream.sample_rate
