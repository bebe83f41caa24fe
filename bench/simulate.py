"""GPU scale on paper: the real scheduler against a GPU cost model, with simulated clients; no model, no
sockets, a simulated clock.

The engine half (``bench/sim_engine.py``) runs the real ``Scheduler`` the way the worker's GPU thread does,
each step taking what a cost table (``bench/costs/*.json``) says. The clients are the load tester's
(``loadtest/``): stream slot i opens at ``ramp_s * i / streams``, and speaks one built-in reply after another
until ``duration_s``, each on a new stream; a reply's tokens (``loadtest.tokens.split_tokens``) go at
``token_rate`` a second through the server's own ``SentenceSegmenter``, whose segments go to the engine when
it emits them; ``cancel_rate`` of replies get a cancel at a uniform fraction of their expected length, as
the load tester sends them. Each chunk's arrival goes through the load tester's jitter-buffer playback
(``loadtest.playback``) to count underruns. Replies that start after the ramp count in the figures.

Admission is measured, not enforced, unless ``--enforce-admission``: a start it refuses then waits
``RETRY_S`` and tries again, as ``bench/engine_load.py``'s slots do, and each refusal counts.

Left out: the network and the I/O plane (bench/io_plane.py measures it), audio budgets (the client reads at
once, so they never hold a stream), the server's early fragment for a listener low on audio
(``LOW_AUDIO_S``), and sentence length in the sentence stage's cost.

    python bench/simulate.py [--costs h100-measured h100-target] [--streams 100 300 1000 2000 3000]
        [--max-batch-windows 8] [--max-batch-sentences 8] [--duration 40] [--ramp 10]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import math
import os
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sim_costs import CostTable, load_tables
from sim_engine import SAMPLE_RATE, EventQueue, SimEngine, spec

from voxwire.engine.scheduler import Scheduler, SchedulerConfig
from voxwire.engine.work import Audio, End, EngineEvent, Failed
from voxwire.loadtest.client import SPEECH_CHARS_PER_S
from voxwire.loadtest.corpus import BUILTIN_REPLIES
from voxwire.loadtest.playback import ChunkArrival, simulate_playback
from voxwire.loadtest.tokens import split_tokens
from voxwire.server.segmenter import SegmenterConfig, SentenceSegmenter
from voxwire.server.settings import Settings

PERCENTILES = (50, 95, 99)
RETRY_S = 0.2
"""With admission enforced, how long a refused slot waits before it starts again."""


@dataclass(frozen=True)
class Load:
    streams: int
    duration_s: float = 40.0
    ramp_s: float = 10.0
    token_rate: float = 60.0
    cancel_rate: float = 0.1
    jitter_s: float = 0.1
    next_after: str = "played"
    """When a slot starts its next reply: once its listener has ``played`` the last one (each slot is one
    listener hearing speech all the time: N slots are N realtime streams), or at its ``done`` as the load
    tester does (a slot then asks for audio faster than real time, as ``done`` comes up to ``max_ahead_s``
    before the audio has played)."""
    enforce_admission: bool = False
    """Refuse the starts admission refuses (the slot retries after ``RETRY_S``); else only count them."""
    grace_s: float = 10.0
    """A reply still open this long after ``duration_s`` is given up (counted as unfinished)."""
    seed: int = 0


@dataclass(frozen=True)
class Script:
    """A reply as the engine sees it: each segment and when (s after the first token) it is emitted, and
    when the last token (``final``) goes."""

    chars: int
    segments: tuple[tuple[float, str], ...]
    last_token_s: float


@functools.cache
def script(index: int, token_rate: float) -> Script:
    """Built-in reply ``index`` cut into tokens (the same cut every time) and through the segmenter."""
    text = BUILTIN_REPLIES[index]
    tokens = split_tokens(text, random.Random(index))
    segmenter = SentenceSegmenter(SegmenterConfig(first_fragment_min_chars=Settings().first_fragment_chars))
    segments: list[tuple[float, str]] = []
    for n, token in enumerate(tokens):
        emitted = segmenter.push(token) + (segmenter.flush() if n == len(tokens) - 1 else [])
        segments += [(n / token_rate, segment) for segment in emitted]
    return Script(len(text), tuple(segments), (len(tokens) - 1) / token_rate)


@dataclass(eq=False)
class _Reply:
    slot: int
    key: int
    started: float
    arrivals: list[ChunkArrival] = field(default_factory=list)
    samples: int = 0
    ended: bool = False
    first_segment_at: float | None = None


@dataclass(frozen=True)
class Result:
    replies: int
    unfinished: int
    underruns: int
    underrun_replies: int
    ttfa_ms: dict[int, float]
    """First audio from the first token sent, as the load tester measures it."""
    engine_ttfa_ms: dict[int, float]
    """First audio from the first segment reaching the engine: the scheduler's and the GPU's part of it."""
    utilisation: float
    sentence_batch: float
    window_batch: float
    capacity_streams: float
    refused: float
    """The fraction of starts after the ramp that admission refused (enforced) or would have refused (they
    were run all the same)."""
    wall_s: float


class _Clients:
    """The simulated load tester: its slots, their replies, and what each reply heard."""

    def __init__(self, load: Load, scheduler: Scheduler, engine: SimEngine, queue: EventQueue) -> None:
        self.load = load
        self.scheduler = scheduler
        self.engine = engine
        self.queue = queue
        self.replies: dict[int, _Reply] = {}
        self.measured: list[_Reply] = []
        self.refused = 0
        self._rngs = [random.Random(load.seed * 1_000_003 + slot) for slot in range(load.streams)]
        self._next_key = 0

    def open_slots(self) -> None:
        load = self.load
        for slot in range(load.streams):
            self.queue.at(load.ramp_s * slot / load.streams, functools.partial(self._speak, slot))

    def _speak(self, slot: int, now: float) -> None:
        """The slot's next reply on a new stream, unless the run is over."""
        load = self.load
        if now >= load.duration_s:
            return
        rng = self._rngs[slot]
        if load.enforce_admission and not self.scheduler.admits(now):
            self.refused += now >= load.ramp_s
            self.queue.at(now + RETRY_S, functools.partial(self._speak, slot))
            return
        reply_script = script(rng.randrange(len(BUILTIN_REPLIES)), load.token_rate)
        cancel_fraction, cancel_draw = rng.random(), rng.random()
        key = self._next_key
        self._next_key += 1
        reply = self.replies[key] = _Reply(slot, key, now)
        if now >= load.ramp_s:
            self.measured.append(reply)
            if not load.enforce_admission:
                self.refused += not self.scheduler.admits(now)
        self.scheduler.add_stream(key, spec(), now)
        for offset, segment in reply_script.segments:
            self.queue.at(now + offset, functools.partial(self._text, reply, segment))
        self.queue.at(now + reply_script.last_token_s, functools.partial(self._end_input, reply))
        if cancel_draw < load.cancel_rate:
            expected_s = max(reply_script.last_token_s, reply_script.chars / SPEECH_CHARS_PER_S)
            self.queue.at(now + cancel_fraction * expected_s, functools.partial(self._cancel, reply))

    def _text(self, reply: _Reply, segment: str, now: float) -> None:
        if not reply.ended:
            if reply.first_segment_at is None:
                reply.first_segment_at = now
            self.scheduler.add_text(reply.key, segment)
            self.engine.poke(now)

    def _end_input(self, reply: _Reply, now: float) -> None:
        if not reply.ended:
            self.on_events(now, self.scheduler.end_input(reply.key))

    def _cancel(self, reply: _Reply, now: float) -> None:
        if not reply.ended:
            self.scheduler.cancel(reply.key)
            self._finish(reply, now)

    def _finish(self, reply: _Reply, now: float, next_at: float | None = None) -> None:
        reply.ended = True
        del self.replies[reply.key]
        self.queue.at(next_at or now, functools.partial(self._speak, reply.slot))

    def _played_out(self, reply: _Reply, now: float) -> float:
        if self.load.next_after == "done" or not reply.arrivals:
            return now
        end = simulate_playback(reply.arrivals, SAMPLE_RATE, self.load.jitter_s).end
        assert end is not None, "a reply with audio has a playback end"
        return end

    def on_events(self, now: float, events: list[EngineEvent]) -> None:
        for event in events:
            reply = self.replies.get(event.stream)
            if reply is None:
                continue
            match event:
                case Audio(pcm=pcm):
                    reply.arrivals.append(ChunkArrival(now, reply.samples, len(pcm)))
                    reply.samples += len(pcm)
                case End() | Failed():
                    self._finish(reply, now, self._played_out(reply, now))


def simulate(load: Load, costs: CostTable, config: SchedulerConfig) -> Result:
    started = time.perf_counter()
    queue = EventQueue()
    scheduler = Scheduler(config)
    engine = SimEngine(scheduler, costs, queue, on_events=lambda now, events: None)
    clients = _Clients(load, scheduler, engine, queue)
    engine.on_events = clients.on_events
    clients.open_slots()
    queue.run(until=load.duration_s)
    capacity = scheduler.capacity_streams()
    queue.run(until=load.duration_s + load.grace_s)

    ttfa: list[float] = []
    engine_ttfa: list[float] = []
    underruns = underrun_replies = 0
    for reply in clients.measured:
        if reply.arrivals:
            ttfa.append(1000 * (reply.arrivals[0].at - reply.started))
            assert reply.first_segment_at is not None, "audio comes only from text"
            engine_ttfa.append(1000 * (reply.arrivals[0].at - reply.first_segment_at))
            heard = simulate_playback(reply.arrivals, SAMPLE_RATE, load.jitter_s).underruns
            underruns += len(heard)
            underrun_replies += bool(heard)
    steady = [step for step in engine.steps if load.ramp_s <= step.started < load.duration_s]
    busy = sum(min(s.seconds, load.duration_s - s.started) for s in steady)
    sizes = {kind: [s.items for s in steady if s.kind == kind] or [0] for kind in ("sentences", "windows")}
    # Enforced, a refused start is an attempt that did not run; measured only, every start ran.
    starts = len(clients.measured) + (clients.refused if load.enforce_admission else 0)
    return Result(
        replies=len(clients.measured),
        unfinished=sum(reply in clients.replies.values() for reply in clients.measured),
        underruns=underruns,
        underrun_replies=underrun_replies,
        ttfa_ms=percentiles(ttfa),
        engine_ttfa_ms=percentiles(engine_ttfa),
        utilisation=busy / (load.duration_s - load.ramp_s),
        sentence_batch=sum(sizes["sentences"]) / len(sizes["sentences"]),
        window_batch=sum(sizes["windows"]) / len(sizes["windows"]),
        capacity_streams=capacity,
        refused=clients.refused / max(1, starts),
        wall_s=time.perf_counter() - started,
    )


def percentiles(values: Sequence[float]) -> dict[int, float]:
    if not values:
        return {p: math.nan for p in PERCENTILES}
    ordered = sorted(values)
    return {p: ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)] for p in PERCENTILES}


HEADER = (
    "| costs | streams | replies | first audio p50 / p95 / p99 ms | from the engine's first text ms "
    "| underruns (replies) | unfinished "
    "| engine busy | mean batch: sentences / windows | admission: capacity, (would) refuse | wall s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(costs: str, streams: int, result: Result) -> str:
    ttfa = " / ".join(f"{result.ttfa_ms[p]:.0f}" for p in PERCENTILES)
    engine_ttfa = " / ".join(f"{result.engine_ttfa_ms[p]:.0f}" for p in PERCENTILES)
    return (
        f"| {costs} | {streams:,} | {result.replies:,} | {ttfa} | {engine_ttfa} | {result.underruns:,} "
        f"({result.underrun_replies:,}) | {result.unfinished:,} | {100 * result.utilisation:.0f} % "
        f"| {result.sentence_batch:.1f} / {result.window_batch:.1f} "
        f"| {result.capacity_streams:,.0f}, {100 * result.refused:.0f} % | {result.wall_s:.1f} |"
    )


def knee(results: Sequence[tuple[int, Result]]) -> int | None:
    """The largest stream count with zero underruns (and nothing unfinished), below the first that fails."""
    best = None
    for streams, result in sorted(results, key=lambda pair: pair[0]):
        if result.underruns or result.unfinished:
            break
        best = streams
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--costs", nargs="+", default=["h100-measured", "h100-graph-windows", "h100-target"])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 300, 1000, 2000, 3000])
    parser.add_argument("--max-batch-windows", type=int, default=8)
    parser.add_argument("--max-batch-sentences", type=int, default=8)
    parser.add_argument("--max-ahead", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--ramp", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--next-after", choices=["played", "done"], default="played")
    parser.add_argument("--enforce-admission", action="store_true", help="refuse what admission refuses")
    args = parser.parse_args()
    config = SchedulerConfig(
        max_batch_windows=args.max_batch_windows,
        max_batch_sentences=args.max_batch_sentences,
        max_ahead_s=args.max_ahead,
    )
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"config: windows <= {config.max_batch_windows}, sentences <= {config.max_batch_sentences}, "
        f"look-ahead {config.max_ahead_s} s; load: {args.duration} s, ramp {args.ramp} s, 60 tokens/s, "
        f"10 % cancelled, 100 ms jitter buffer, next reply once the last is {args.next_after}, admission "
        f"{'enforced' if args.enforce_admission else 'measured only'}"
    )
    print(HEADER)
    knees = []
    for costs in load_tables(args.costs):
        results = []
        for streams in args.streams:
            load = Load(
                streams,
                args.duration,
                args.ramp,
                next_after=args.next_after,
                seed=args.seed,
                enforce_admission=args.enforce_admission,
            )
            result = simulate(load, costs, config)
            results.append((streams, result))
            print(row(costs.name, streams, result), flush=True)
        knees.append(f"{costs.name}: {knee(results) or 'below ' + str(min(args.streams))}")
    print(f"knee (largest count with zero underruns): {'; '.join(knees)}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
