"""Capacity: how many concurrent realtime streams one voxwire server holds, with batching on and off.

For each mode it starts ``python -m voxwire.server`` on a free port (batching on: on a GPU the server's
default, batches of up to 256 windows and 64 sentences, on a CPU ``--max-batch 8``; batching off:
``--max-batch 1``, one request at a time, the way other TTS servers work, and the CPU default) and, for each
concurrent stream count, runs ``voxwire loadtest`` (``run_load``) against it: every stream slot speaks one
reply of about three sentences after another, fed as LLM-like tokens, with a barge-in rate. Per step:

- first audio p50/p95/p99, underruns of a client with a 100 ms jitter buffer (count, streams affected),
  cancel-to-done p99, aggregate x-real-time (audio received over wall time), errors;
- the engine's mean batch size and mean step time per kind, from the server's ``voxwire_engine_batch_size``
  and ``voxwire_engine_step_seconds`` histograms (the deltas of their ``_sum`` and ``_count`` over the
  step), to hold against a cost table's figures (``bench/costs``);
- the server process's CPU % (``/proc/<pid>/stat`` utime+stime over the step; 100 % is one core), its CPU
  seconds per audio second, and this process's CPU % (the load generator shares the machine).

A step *holds* when every stream was served (no error, nothing unfinished, no protocol violation) with zero
underruns. The capacity of a mode is the largest count that held with every smaller count holding too;
with ``--refine`` (the default) it is bisected between the last count that held and the first that did not.

    python bench/capacity.py                          # CPU: 1 2 4 8 16 streams, 30 s per step, both modes
    python bench/capacity.py --quick                  # smoke run: 1 2 streams, 8 s per step, no refining
    python bench/capacity.py --device cuda            # GPU: 1 10 100 300 1000 2000 streams
    python bench/capacity.py --modes on --streams 2 4 6 --duration 20 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxwire.loadtest import LoadConfig, LoadReport, Outcome, run_load
from voxwire.loadtest.corpus import BUILTIN_REPLIES
from voxwire.server.process import ServerProcess

CPU_STREAMS = (1, 2, 4, 8, 16)
CUDA_STREAMS = (1, 10, 100, 300, 1000, 2000)
TOKEN_RATE = 60.0
"""Text tokens per second per stream, a hosted LLM's pace. At 30, replies that open with a short sentence
("Let me think.") and go on with a long one underrun even alone on an idle server: the text arrives slower
than the first sentence plays (docs/benchmarks.md). That measures the input, not the server."""
MODES = ("on", "off")


def mode_flags(mode: str, device: str) -> tuple[str, ...]:
    """The server flags of a mode: off is one item per engine batch; on is the device's default batching on a
    GPU (``--max-batch 0``), and batches of up to 8 on a CPU (whose default is batches of one)."""
    if mode == "off":
        return ("--max-batch", "1")
    return ("--max-batch", "8") if device == "cpu" else ("--max-batch", "0")


IDLE_TIMEOUT_S = 60.0
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def replies_of(sentences: int, corpus: Sequence[str] = BUILTIN_REPLIES) -> tuple[str, ...]:
    """Replies of at least ``sentences`` sentences each: corpus replies joined in order, one per start."""
    replies = []
    for start in range(len(corpus)):
        parts: list[str] = []
        count = 0
        while count < sentences:
            text = corpus[(start + len(parts)) % len(corpus)]
            parts.append(text)
            count += len(_SENTENCE_END.findall(text))
        replies.append(" ".join(parts))
    return tuple(replies)


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (non-empty), as every bench table here reports it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) that process ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; skip past it
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14 and 15)


def wait_idle(server: ServerProcess, timeout_s: float = IDLE_TIMEOUT_S) -> dict[str, float]:
    """Poll /metrics until no stream, stream task or connection is left; the metrics then."""
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = server.metrics()
        busy = {
            name: metrics.get(name, 0.0)
            for name in ("voxwire_streams_active", "voxwire_stream_tasks", "voxwire_connections")
        }
        if not any(busy.values()):
            return metrics
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not go idle within {timeout_s:g} s: {busy}")
        time.sleep(0.2)


def histogram_mean(before: dict[str, float], after: dict[str, float], metric: str, kind: str) -> float | None:
    """Mean of one ``kind`` of a /metrics histogram between two readings (None when nothing was observed)."""
    count_key = f'{metric}_count{{kind="{kind}"}}'
    sum_key = f'{metric}_sum{{kind="{kind}"}}'
    count = after.get(count_key, 0.0) - before.get(count_key, 0.0)
    total = after.get(sum_key, 0.0) - before.get(sum_key, 0.0)
    return total / count if count else None


@dataclass(frozen=True)
class StepResult:
    mode: str
    streams: int
    report: LoadReport
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    batch_windows: float | None
    batch_sentences: float | None
    step_windows_s: float | None
    step_sentences_s: float | None

    @property
    def server_cpu_pct(self) -> float:
        return 100 * self.server_cpu_s / self.wall_s

    @property
    def client_cpu_pct(self) -> float:
        return 100 * self.client_cpu_s / self.wall_s

    @property
    def cpu_per_audio_s(self) -> float:
        """Server CPU seconds spent per second of audio delivered (lower is more efficient)."""
        return self.server_cpu_s / self.report.audio_s if self.report.audio_s else math.inf

    @property
    def served_all(self) -> bool:
        report = self.report
        outcomes = report.outcomes
        return (
            not report.result.errors
            and not report.violations
            and outcomes[Outcome.ERROR] == 0
            and outcomes[Outcome.UNFINISHED] == 0
        )

    @property
    def holds(self) -> bool:
        """Every stream served in real time: nothing refused or lost, zero underruns."""
        return self.served_all and self.report.underruns == 0

    def to_dict(self) -> dict[str, Any]:
        figures = self.report.to_dict()
        return {
            "mode": self.mode,
            "streams": self.streams,
            "holds": self.holds,
            "server_cpu_pct": self.server_cpu_pct,
            "client_cpu_pct": self.client_cpu_pct,
            "server_cpu_s_per_audio_s": self.cpu_per_audio_s,
            "batch_windows_mean": self.batch_windows,
            "batch_sentences_mean": self.batch_sentences,
            "step_windows_s_mean": self.step_windows_s,
            "step_sentences_s_mean": self.step_sentences_s,
            "load": figures,
        }


@dataclass(frozen=True)
class LoadShape:
    """What every step of a run shares, besides the stream count."""

    duration_s: float
    ramp_s: float
    cancel_rate: float
    token_rate: float
    streams_per_conn: int
    procs: int
    texts: tuple[str, ...]
    grace_s: float = 60.0
    """Streams in flight at the end of a step may finish for this long: a reply is ~15 s of audio, and a
    stream lasts about as long as its audio (the server keeps it at most ``--max-ahead-ms`` ahead)."""
    seed: int = 0

    def config(self, url: str, streams: int, duration_s: float | None = None) -> LoadConfig:
        duration = self.duration_s if duration_s is None else duration_s
        return LoadConfig(
            url=url,
            streams=streams,
            duration_s=duration,
            ramp_s=min(self.ramp_s, duration),
            procs=self.procs,
            streams_per_conn=self.streams_per_conn,
            texts=self.texts,
            token_rate=self.token_rate,
            cancel_rate=self.cancel_rate,
            grace_s=self.grace_s,
            seed=self.seed,
        )


def run_step(server: ServerProcess, mode: str, streams: int, shape: LoadShape) -> StepResult:
    """One load step against an idle server, with the server's CPU and batch sizes over it."""
    assert server.proc is not None
    before = wait_idle(server)
    server_cpu = process_cpu_s(server.proc.pid)
    client_cpu = process_cpu_s(os.getpid())
    started = time.perf_counter()
    report = asyncio.run(run_load(shape.config(server.ws_url, streams)))
    wall_s = time.perf_counter() - started
    server_cpu = process_cpu_s(server.proc.pid) - server_cpu
    client_cpu = process_cpu_s(os.getpid()) - client_cpu
    after = server.metrics()
    step = StepResult(
        mode=mode,
        streams=streams,
        report=report,
        wall_s=wall_s,
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        batch_windows=histogram_mean(before, after, "voxwire_engine_batch_size", "windows"),
        batch_sentences=histogram_mean(before, after, "voxwire_engine_batch_size", "sentences"),
        step_windows_s=histogram_mean(before, after, "voxwire_engine_step_seconds", "windows"),
        step_sentences_s=histogram_mean(before, after, "voxwire_engine_step_seconds", "sentences"),
    )
    print(f"  {mode:>3} {streams:>5} streams: {summary(step)}", file=sys.stderr, flush=True)
    print_server_errors(server)
    return step


def print_server_errors(server: ServerProcess) -> None:
    """The server's log lines of errors so far (its last lines are kept), so that a failure is explained."""
    lines = list(server.log)
    for index, line in enumerate(lines):
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
            print("  server: " + "\n  server: ".join(lines[index : index + 30]), file=sys.stderr, flush=True)
            return


def warm_up(server: ServerProcess, shape: LoadShape) -> None:
    """One short stream first, so that no step pays for the first calls into torch."""
    asyncio.run(run_load(shape.config(server.ws_url, 1, duration_s=3.0)))


def server_flags(device: str, max_streams: int, extra: Sequence[str]) -> tuple[str, ...]:
    connections = max(256, max_streams + 16)
    return ("--device", device, "--max-connections", str(connections), *extra)


@dataclass(frozen=True)
class ModeResult:
    steps: list[StepResult]
    """In ascending order of stream count."""
    admission_estimate: float | None
    """The server's own ``voxwire_engine_capacity_streams`` at the end (-1: not measured)."""


def run_mode(
    mode: str, counts: Sequence[int], shape: LoadShape, device: str, refine: bool, extra: Sequence[str]
) -> ModeResult:
    """The steps of one mode in ascending order, then (with ``refine``) a bisection of the capacity."""
    flags = server_flags(device, max(counts), (*mode_flags(mode, device), *extra))
    print(f"mode {mode}: python -m voxwire.server {' '.join(flags)}", file=sys.stderr, flush=True)
    steps: list[StepResult] = []
    with ServerProcess(*flags) as server:
        warm_up(server, shape)
        for streams in sorted(counts):
            steps.append(run_step(server, mode, streams, shape))
        if refine:
            low, high = capacity_bounds(steps)
            while high is not None and high - low > 1:
                middle = (low + high) // 2
                step = run_step(server, mode, middle, shape)
                steps.append(step)
                low, high = (middle, high) if step.holds else (low, middle)
        estimate = server.metrics().get("voxwire_engine_capacity_streams")
    return ModeResult(sorted(steps, key=lambda s: s.streams), estimate)


def capacity_bounds(steps: Iterable[StepResult]) -> tuple[int, int | None]:
    """(largest count that held with every smaller count holding, smallest count that did not or None)."""
    low = 0
    for step in sorted(steps, key=lambda s: s.streams):
        if not step.holds:
            return low, step.streams
        low = step.streams
    return low, None


# -- output ------------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _mean(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ms_of(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f}"


def summary(step: StepResult) -> str:
    r = step.report
    return (
        f"first audio p50 {_ms(r.first_audio_ms.p50)} p95 {_ms(r.first_audio_ms.p95)} ms, "
        f"underruns {r.underruns} in {r.streams_with_underruns}, x-rt {r.x_real_time:.2f}, "
        f"server cpu {step.server_cpu_pct:.0f}%, errors {dict(r.result.errors) or 'none'}, "
        f"{'holds' if step.holds else 'does not hold'}"
    )


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def mode_table(steps: Sequence[StepResult]) -> str:
    header = (
        "streams",
        "streams run (done/cancelled/failed)",
        "first audio p50 / p95 / p99 ms",
        "underruns (streams), stall",
        "cancel→done p99 ms",
        "x real time",
        "batch mean windows / sentences",
        "step mean ms windows / sentences",
        "server CPU %",
        "server CPU s per audio s",
        "client CPU %",
        "errors",
        "holds",
    )
    rows = []
    for step in steps:
        r = step.report
        outcomes = r.outcomes
        failed = outcomes[Outcome.ERROR] + outcomes[Outcome.UNFINISHED]
        fa = r.first_audio_ms
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r.result.errors.items())) or "none"
        if r.violations:
            errors += f"; {r.violations} violations"
        rows.append(
            (
                str(step.streams),
                f"{outcomes[Outcome.COMPLETE]}/{outcomes[Outcome.CANCELLED]}/{failed}",
                f"{_ms(fa.p50)} / {_ms(fa.p95)} / {_ms(fa.p99)}",
                f"{r.underruns} ({r.streams_with_underruns}), stall {r.stall_ms / 1000:.2f} s",
                _ms(r.cancel_to_done_ms.p99),
                f"{r.x_real_time:.2f}",
                f"{_mean(step.batch_windows)} / {_mean(step.batch_sentences)}",
                f"{_ms_of(step.step_windows_s)} / {_ms_of(step.step_sentences_s)}",
                f"{step.server_cpu_pct:.0f}",
                f"{step.cpu_per_audio_s:.2f}",
                f"{step.client_cpu_pct:.0f}",
                errors,
                "yes" if step.holds else "no",
            )
        )
    return markdown(header, rows)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def ratio_table(on: Sequence[StepResult], off: Sequence[StepResult]) -> str:
    """Batching on against off at the stream counts both ran."""
    by_count = {s.streams: s for s in off}
    header = (
        "streams",
        "first audio p50 off/on",
        "first audio p95 off/on",
        "underrun streams on / off",
        "x real time on/off",
        "server CPU s per audio s off/on",
    )
    rows = []
    for step in on:
        other = by_count.get(step.streams)
        if other is None:
            continue
        a, b = step.report, other.report
        rows.append(
            (
                str(step.streams),
                _ratio(b.first_audio_ms.p50, a.first_audio_ms.p50),
                _ratio(b.first_audio_ms.p95, a.first_audio_ms.p95),
                f"{a.streams_with_underruns} / {b.streams_with_underruns}",
                _ratio(a.x_real_time, b.x_real_time),
                _ratio(other.cpu_per_audio_s, step.cpu_per_audio_s),
            )
        )
    return markdown(header, rows)


def machine() -> str:
    model = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.node()}: {model}, {os.cpu_count()} CPUs; load average before the run {load}"


def add_token_rate_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-rate",
        type=float,
        default=TOKEN_RATE,
        help=f"text tokens per second per stream (default {TOKEN_RATE:g})",
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="the server's --device (default cpu)")
    parser.add_argument(
        "--streams",
        type=int,
        nargs="+",
        help=f"concurrent stream counts (default {CPU_STREAMS} on CPU, {CUDA_STREAMS} on CUDA)",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--duration", type=float, help="seconds per step, ramp included (default 30)")
    parser.add_argument("--ramp", type=float, default=5.0, help="ramp-up seconds per step (default 5)")
    parser.add_argument("--cancel-rate", type=float, default=0.1, help="barge-in fraction (default 0.1)")
    add_token_rate_argument(parser)
    parser.add_argument("--sentences", type=int, default=3, help="sentences per reply (default 3)")
    parser.add_argument("--streams-per-conn", type=int, default=1)
    parser.add_argument("--procs", type=int, default=1, help="load generator processes (default 1)")
    parser.add_argument("--no-refine", dest="refine", action="store_false", help="do not bisect capacity")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 2 streams, 8 s steps, no refine")
    parser.add_argument("--json", type=Path, help="also write every step's figures here")
    parser.add_argument("--server-arg", action="append", default=[], help="extra server flag (repeatable)")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams = args.streams or [1, 2]
        args.duration = args.duration or 8.0
        args.ramp = min(args.ramp, 2.0)
        args.refine = False
    args.streams = args.streams or list(CUDA_STREAMS if args.device.startswith("cuda") else CPU_STREAMS)
    args.duration = args.duration or 30.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shape = LoadShape(
        duration_s=args.duration,
        ramp_s=args.ramp,
        cancel_rate=args.cancel_rate,
        token_rate=args.token_rate,
        streams_per_conn=args.streams_per_conn,
        procs=args.procs,
        texts=replies_of(args.sentences),
    )
    print(f"# capacity: {machine()}")
    print(
        f"device {args.device}; {args.duration:g} s per step (ramp {shape.ramp_s:g} s), cancel rate "
        f"{args.cancel_rate:g}, {args.token_rate:g} tokens/s, replies of >= {args.sentences} sentences, "
        f"jitter buffer 100 ms"
    )
    results = {
        mode: run_mode(mode, args.streams, shape, args.device, args.refine, args.server_arg)
        for mode in args.modes
    }
    for mode, result in results.items():
        low, high = capacity_bounds(result.steps)
        print(f"\n## batching {mode}\n\n{mode_table(result.steps)}\n")
        beyond = f"; {high} did not" if high is not None else " (the largest count tried)"
        print(f"capacity with batching {mode}: {low} concurrent streams with zero underruns{beyond}")
        print(f"the server's own admission estimate at the end: {result.admission_estimate} streams")
    if "on" in results and "off" in results:
        print(f"\n## batching on vs off\n\n{ratio_table(results['on'].steps, results['off'].steps)}")
    if args.json is not None:
        figures = {
            mode: {
                "steps": [s.to_dict() for s in result.steps],
                "admission_estimate": result.admission_estimate,
            }
            for mode, result in results.items()
        }
        args.json.write_text(json.dumps({"machine": machine(), "modes": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
