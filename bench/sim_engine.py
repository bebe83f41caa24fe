"""The real engine ``Scheduler`` on a simulated clock, with a simulated voice whose steps take what a cost
table says (:mod:`sim_costs`): the engine half of ``bench/simulate.py``.

It drives the scheduler the way ``engine/worker.py``'s single compute thread does (one thread per GPU):
``schedule(now)``; if a batch comes back, the clock moves by the step's cost and ``update(batch, outputs,
now)`` takes its outputs; if none, it waits for ``next_wakeup`` or for new work, whichever comes first. The
voice is not run: a sentence becomes a latent of ``FRAMES_PER_CHAR`` frames per character, a window becomes
zeros of the window's length. Only the clock, the outputs' sizes and the order of calls reach the scheduler,
so its decisions are those the worker would make with a voice that took exactly these times.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sim_costs import CostTable

from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.scheduler import GPU_FIRST_WINDOW_FRAMES, Scheduler, SchedulerConfig, StreamSpec
from voxwire.engine.work import Batch, EngineEvent, Piece, Segment, SentenceBatch, SentenceOutput, WindowBatch

SAMPLE_RATE = 22050
HOP = 256
VOICE = "en_US-joe-medium"
PARAMS = SynthesisParams(0.667, 0.8, 1.0)
FRAMES_PER_CHAR = 5.40
"""Latent frames per character of text, for the bundled voice: 21,812 frames for the 4,037 characters of
the load tester's built-in replies (``loadtest/corpus.py``), each sentence encoded on its own with the
default scales and seed 0 (about 15.9 characters per second of speech)."""


@dataclass(frozen=True)
class Chosen:
    """One item of a batch: a sentence's text, or a window's latent frames [start, end)."""

    stream: int
    text: str = ""
    start: int = 0
    end: int = 0


Decision = tuple[str, tuple[Chosen, ...]]
"""One engine step as the scheduler chose it: its kind (``sentences`` or ``windows``) and its items, in
batch order."""


def latent_frames(chars: int) -> int:
    return max(1, round(FRAMES_PER_CHAR * chars))


def spec() -> StreamSpec:
    """A stream of the bundled voice with no audio budget (the simulated client reads every chunk at once,
    so a budget would never hold it), and a GPU engine's first window."""
    return StreamSpec(VOICE, SAMPLE_RATE, HOP, PARAMS, None, first_window_frames=GPU_FIRST_WINDOW_FRAMES)


class EventQueue:
    """Callbacks at simulated times, in time order (ties in the order they were added)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()

    def at(self, when: float, callback: Callable[[float], None]) -> None:
        heapq.heappush(self._heap, (max(when, self.now), next(self._seq), callback))

    def run(self, until: float = float("inf")) -> None:
        while self._heap and self._heap[0][0] <= until:
            when, _, callback = heapq.heappop(self._heap)
            self.now = when
            callback(when)


@dataclass
class Step:
    kind: str
    started: float
    seconds: float
    items: int


@dataclass
class SimEngine:
    """One GPU's compute thread: runs the scheduler's batches, one at a time, at the cost table's speed."""

    scheduler: Scheduler
    costs: CostTable
    queue: EventQueue
    on_events: Callable[[float, list[EngineEvent]], None]
    decisions: list[Decision] | None = None
    """When a list, every step's decision is appended to it."""
    steps: list[Step] = field(default_factory=list)
    _running: bool = False
    _poll_at: float | None = None
    _generation: int = 0
    _latents: dict[int, Latent] = field(default_factory=dict)
    _pcm: dict[int, np.ndarray] = field(default_factory=dict)

    def poke(self, now: float) -> None:
        """New work may be ready (as ``add_text`` notifies the worker's lock)."""
        if self._running or (self._poll_at is not None and self._poll_at <= now):
            return
        self._plan_poll(now)

    def _plan_poll(self, when: float) -> None:
        self._generation += 1
        generation = self._generation
        self._poll_at = when
        self.queue.at(when, lambda now: self._poll(now, generation))

    def _poll(self, now: float, generation: int) -> None:
        if generation != self._generation:
            return  # a sooner poll replaced this one
        self._poll_at = None
        batch = self.scheduler.schedule(now)
        if batch is None:
            wakeup = self.scheduler.next_wakeup(now)
            if wakeup is not None:
                self._plan_poll(now + wakeup)
            return
        seconds = self._cost(batch)
        self._running = True
        self.steps.append(Step(_kind(batch), now, seconds, len(batch.items)))
        if self.decisions is not None:
            self.decisions.append(decision(batch))
        self.queue.at(now + seconds, lambda done: self._complete(done, batch, seconds))

    def _cost(self, batch: Batch) -> float:
        if isinstance(batch, SentenceBatch):
            return self.costs.sentence_step_s(len(batch.items))
        return self.costs.window_step_s([item.spec.frames for item in batch.items])

    def _complete(self, now: float, batch: Batch, seconds: float) -> None:
        self._running = False
        if isinstance(batch, SentenceBatch):
            sentences = [SentenceOutput(self._latent(len(_text(item.source)))) for item in batch.items]
            events = self.scheduler.update(batch, sentences, now)
            audio_s = 0.0
        else:
            blocks = [self._zeros(item.samples) for item in batch.items]
            events = self.scheduler.update(batch, blocks, now)
            audio_s = sum(item.samples for item in batch.items) / SAMPLE_RATE
        self.scheduler.record_step(seconds, audio_s)
        self._plan_poll(now)  # the worker's loop schedules again at once
        self.on_events(now, events)

    def _latent(self, chars: int) -> Latent:
        """A latent of the frames that many characters make; shared, as the scheduler reads only its size."""
        frames = latent_frames(chars)
        latent = self._latents.get(frames)
        if latent is None:
            zeros = torch.zeros(1, frames)
            latent = self._latents[frames] = Latent(zeros, zeros, torch.zeros(0, dtype=torch.long), frames)
        return latent

    def _zeros(self, samples: int) -> np.ndarray:
        block = self._pcm.get(samples)
        if block is None:
            block = self._pcm[samples] = np.zeros(samples, np.int16)
        return block


def _kind(batch: Batch) -> str:
    return "sentences" if isinstance(batch, SentenceBatch) else "windows"


def decision(batch: Batch) -> Decision:
    if isinstance(batch, WindowBatch):
        return (
            "windows",
            tuple(Chosen(item.stream, start=item.spec.start, end=item.spec.end) for item in batch.items),
        )
    return ("sentences", tuple(Chosen(item.stream, text=_text(item.source)) for item in batch.items))


def _text(source: Segment | Piece) -> str:
    return source.text if isinstance(source, Segment) else "".join(map(chr, source.ids))


def replay(texts: Sequence[Sequence[str]], costs: CostTable, config: SchedulerConfig) -> list[Decision]:
    """The decisions for streams 0, 1, ... opened at time 0 with all of their texts queued and their input
    ended at once, run to the end: the same inputs tests/test_simulate.py gives the real worker."""
    queue = EventQueue()
    scheduler = Scheduler(config)
    decisions: list[Decision] = []
    engine = SimEngine(scheduler, costs, queue, on_events=lambda now, events: None, decisions=decisions)
    for key, stream_texts in enumerate(texts):
        scheduler.add_stream(key, spec(), 0.0)
        for text in stream_texts:
            scheduler.add_text(key, text)
    for key in range(len(texts)):
        scheduler.end_input(key)
    engine.poke(0.0)
    queue.run()
    return decisions
