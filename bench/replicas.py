"""Replicas: one voxwire server against two behind nginx, on the same machine, in the same run.

Both layouts sit behind the repository's nginx recipe (``deploy/nginx/voxwire.conf``, run by
``voxwire.server.proxy.NginxProxy``), so the proxy's cost is in both:

- ``1 replica``: one server with ``--workers 2`` (two engine compute threads);
- ``2 replicas``: two servers with ``--workers 1`` each (one compute thread each), ``least_conn``.

Both use the same number of compute threads; on a machine with few cores they share the same cores, so
this measures what splitting one server into processes costs or gains (separate event loops and GILs
against one engine's shared queue), not what a second machine would add. For each layout and each stream
count it runs ``voxwire loadtest`` (``run_load``) through nginx: replies of about three sentences fed at 60
tokens/s, a 100 ms client jitter buffer, 10 % barge-ins. A step *holds* when every stream was served (no
error, nothing unfinished, no protocol violation) with zero underruns; a layout's zero-underrun capacity is
the largest count that held with every smaller count holding too.

    python bench/replicas.py                        # 2 4 6 8 streams, 20 s per step
    python bench/replicas.py --streams 2 4 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from capacity import machine, replies_of, wait_idle  # bench/capacity.py, beside this script

from voxwire.loadtest import LoadConfig, LoadReport, Outcome, run_load
from voxwire.server.process import ServerProcess
from voxwire.server.proxy import NginxProxy

RECIPE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "voxwire.conf"
LAYOUTS = {"1 replica": (1, "2"), "2 replicas": (2, "1")}
"""Layout name: (replicas, --workers per replica)."""
TOKEN_RATE = 60.0
CANCEL_RATE = 0.1


@dataclass(frozen=True)
class Step:
    layout: str
    streams: int
    report: LoadReport

    @property
    def holds(self) -> bool:
        report = self.report
        served = report.outcomes[Outcome.ERROR] == 0 and report.outcomes[Outcome.UNFINISHED] == 0
        return served and not report.violations and report.underruns == 0


def run_layout(name: str, counts: Sequence[int], duration_s: float) -> list[Step]:
    replicas, workers = LAYOUTS[name]
    flags = ("--workers", workers, "--max-batch", "1", "--idle-timeout-s", "60")
    print(f"{name}: {replicas} x python -m voxwire.server {' '.join(flags)}", file=sys.stderr, flush=True)
    servers = [ServerProcess(*flags) for _ in range(replicas)]
    steps = []
    with ExitStack() as stack:
        with ThreadPoolExecutor(replicas) as pool:
            for server in pool.map(lambda s: s.start(), servers):
                stack.callback(server.stop)
        proxy = stack.enter_context(NginxProxy(RECIPE, [s.port for s in servers]))
        texts = replies_of(3)
        asyncio.run(run_load(config(proxy.ws_url, texts, replicas, 3.0)))  # warm-up, not measured
        for streams in sorted(counts):
            for server in servers:
                wait_idle(server)
            report = asyncio.run(run_load(config(proxy.ws_url, texts, streams, duration_s)))
            step = Step(name, streams, report)
            steps.append(step)
            print(f"  {streams:>3} streams: {summary(step)}", file=sys.stderr, flush=True)
    return steps


def config(url: str, texts: tuple[str, ...], streams: int, duration_s: float) -> LoadConfig:
    return LoadConfig(
        url=url,
        streams=streams,
        duration_s=duration_s,
        ramp_s=min(2.0, duration_s / 4),
        texts=texts,
        token_rate=TOKEN_RATE,
        cancel_rate=CANCEL_RATE,
        jitter_ms=100.0,
    )


def summary(step: Step) -> str:
    r = step.report
    p95 = f"{r.first_audio_ms.p95:.0f}" if r.first_audio_ms.count else "-"
    return (
        f"first audio p95 {p95} ms, underruns {r.underruns} in {r.streams_with_underruns} streams, "
        f"completed {r.outcomes[Outcome.COMPLETE]}, refused {r.outcomes[Outcome.ERROR]}, "
        f"x real time {r.x_real_time:.2f}{'  holds' if step.holds else ''}"
    )


def capacity(steps: Sequence[Step]) -> int:
    held = 0
    for step in sorted(steps, key=lambda s: s.streams):
        if not step.holds:
            break
        held = step.streams
    return held


def table(results: dict[str, list[Step]]) -> str:
    counts = sorted({step.streams for steps in results.values() for step in steps})
    header = ["layout", "zero-underrun capacity"]
    header += [f"{n} streams: p95 first audio / underruns" for n in counts]
    rows = []
    for name, steps in results.items():
        by_count = {step.streams: step for step in steps}
        cells = []
        for n in counts:
            r = by_count[n].report
            p95 = f"{r.first_audio_ms.p95:.0f} ms" if r.first_audio_ms.count else "-"
            refused = f", {r.outcomes[Outcome.ERROR]} refused" if r.outcomes[Outcome.ERROR] else ""
            cells.append(f"{p95} / {r.underruns}{refused}")
        rows.append([name, str(capacity(steps)), *cells])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per step (default 20)")
    args = parser.parse_args(argv)
    print(machine(), file=sys.stderr, flush=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {name: run_layout(name, args.streams, args.duration) for name in LAYOUTS}
    print(f"\n{started}, {machine()}\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
