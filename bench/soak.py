"""Soak: the server at about 80 % of its measured capacity for minutes on end; does anything grow?

Starts ``python -m voxwire.server`` on a free port, runs ``voxwire loadtest`` (``run_load``, cancel rate 0.2,
replies of about three sentences at 60 tokens/s) against it with ``--load-fraction`` of ``--capacity``
concurrent streams (without ``--capacity``, a short capacity search on the same server measures it first),
for ``--warmup`` seconds and then ``--minutes`` minutes. It samples the server process every
``--interval`` seconds: resident memory (``VmRSS``), threads (``/proc/<pid>/status``), open file
descriptors (``/proc/<pid>/fd``), and from ``/metrics`` the live stream tasks, connections, active streams
and the engine's streams.

Targets: RSS growth under 5 % from the end of the warm-up to the end of the load; once the streams have
ended, as many stream tasks, connections and file descriptors as before the load (zero growth); zero
underruns. The exit status is 1 when a target is missed.

    python bench/soak.py --minutes 10                 # measures capacity first (about 2 minutes)
    python bench/soak.py --minutes 10 --capacity 6    # 80 % of 6 streams: 5 streams
    python bench/soak.py --minutes 1 --warmup 20 --interval 10 --capacity 4   # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from capacity import (  # bench/capacity.py, beside this script
    LoadShape,
    add_token_rate_argument,
    capacity_bounds,
    machine,
    markdown,
    process_cpu_s,
    replies_of,
    run_step,
    server_flags,
    wait_idle,
    warm_up,
)

from voxwire.loadtest import LoadReport, run_load
from voxwire.server.process import ServerProcess

RSS_GROWTH_LIMIT_PCT = 5.0
SEARCH_STREAMS = (2, 4, 6, 8, 10, 12, 16, 24, 32)
"""Stream counts the quick capacity search tries in order, stopping at the first that does not hold."""
SEARCH_STEP_S = 20.0


@dataclass(frozen=True)
class Sample:
    """The server process at one moment; ``t_s`` counts from the start of the load."""

    t_s: float
    rss_mib: float
    threads: int
    fds: int
    stream_tasks: int
    connections: int
    streams_active: int
    engine_streams: int
    cpu_pct: float | None
    """Server CPU % since the previous sample (100 % is one core)."""
    fd_kinds: dict[str, int]
    """Open descriptors by what they point to (socket, pipe, anon_inode:[eventpoll], a path...)."""


def fd_kinds(pid: int) -> dict[str, int]:
    """Open descriptors of process ``pid`` counted by target kind (a socket's or pipe's inode left out)."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed between the listing and the read: it is not open any more
        kind = target.split(":[", 1)[0] if target.startswith(("socket:", "pipe:")) else target
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def read_status(pid: int) -> tuple[float, int]:
    """(resident MiB, threads) of process ``pid``."""
    rss_kib, threads = 0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "VmRSS":
            rss_kib = int(value.split()[0])
        elif name == "Threads":
            threads = int(value)
    return rss_kib / 1024, threads


class Sampler:
    def __init__(self, server: ServerProcess) -> None:
        assert server.proc is not None
        self._server = server
        self._pid = server.proc.pid
        self._last: tuple[float, float] | None = None

    def sample(self, t_s: float) -> Sample:
        """Blocking (reads /proc and /metrics): call it in a thread from the event loop.

        /proc first, so that the descriptors do not include this sample's own /metrics request.
        """
        rss_mib, threads = read_status(self._pid)
        kinds = fd_kinds(self._pid)
        now, cpu_s = time.perf_counter(), process_cpu_s(self._pid)
        metrics = self._server.metrics()
        cpu_pct = None
        if self._last is not None:
            cpu_pct = 100 * (cpu_s - self._last[1]) / (now - self._last[0])
        self._last = (now, cpu_s)
        return Sample(
            t_s=t_s,
            rss_mib=rss_mib,
            threads=threads,
            fds=sum(kinds.values()),
            stream_tasks=int(metrics.get("voxwire_stream_tasks", 0)),
            connections=int(metrics.get("voxwire_connections", 0)),
            streams_active=int(metrics.get("voxwire_streams_active", 0)),
            engine_streams=int(metrics.get("voxwire_engine_streams", 0)),
            cpu_pct=cpu_pct,
            fd_kinds=kinds,
        )


def measure_capacity(server: ServerProcess, shape: LoadShape) -> int:
    """The largest count of ``SEARCH_STREAMS`` that holds (all served, zero underruns), tried in order."""
    steps = []
    for streams in SEARCH_STREAMS:
        steps.append(run_step(server, "on", streams, shape))
        if not steps[-1].holds:
            break
    low, _ = capacity_bounds(steps)
    if low == 0:
        raise RuntimeError("the server held no stream count in the capacity search")
    return low


async def soak(
    server: ServerProcess, shape: LoadShape, streams: int, warmup_s: float, interval_s: float
) -> tuple[LoadReport, list[Sample]]:
    """Run the load, sampling the server at the end of the warm-up and every ``interval_s`` after it."""
    sampler = Sampler(server)
    samples: list[Sample] = []
    load = asyncio.create_task(run_load(shape.config(server.ws_url, streams)))
    started = time.perf_counter()
    next_at = warmup_s
    while True:
        # Wait for the next sampling moment or the end of the load, whichever comes first.
        await asyncio.wait({load}, timeout=max(0.0, next_at - (time.perf_counter() - started)))
        if load.done() or time.perf_counter() - started > shape.duration_s:
            break
        samples.append(await asyncio.to_thread(sampler.sample, time.perf_counter() - started))
        next_at += interval_s
    return await load, samples


@dataclass(frozen=True)
class Verdict:
    name: str
    value: str
    target: str
    met: bool


def verdicts(
    report: LoadReport, samples: Sequence[Sample], idle_before: Sample, idle_after: Sample
) -> list[Verdict]:
    first, last = samples[0], samples[-1]
    growth = 100 * (last.rss_mib - first.rss_mib) / first.rss_mib
    errors = ", ".join(f"{k} {v}" for k, v in sorted(report.result.errors.items())) or "none"
    return [
        Verdict(
            "RSS after warm-up → end of load",
            f"{first.rss_mib:.1f} → {last.rss_mib:.1f} MiB ({growth:+.2f} %)",
            f"< {RSS_GROWTH_LIMIT_PCT:g} %",
            growth < RSS_GROWTH_LIMIT_PCT,
        ),
        Verdict(
            "stream tasks idle before → after",
            f"{idle_before.stream_tasks} → {idle_after.stream_tasks}",
            "no growth",
            idle_after.stream_tasks <= idle_before.stream_tasks,
        ),
        Verdict(
            "connections idle before → after",
            f"{idle_before.connections} → {idle_after.connections}",
            "no growth",
            idle_after.connections <= idle_before.connections,
        ),
        Verdict(
            "open fds idle before → after",
            f"{idle_before.fds} → {idle_after.fds}",
            "no growth",
            idle_after.fds <= idle_before.fds,
        ),
        Verdict(
            "threads idle before → after",
            f"{idle_before.threads} → {idle_after.threads}",
            "no growth",
            idle_after.threads <= idle_before.threads,
        ),
        Verdict(
            "underruns",
            f"{report.underruns} in {report.streams_with_underruns} streams",
            "0",
            report.underruns == 0,
        ),
        Verdict("errors", errors, "none", not report.result.errors),
        Verdict("protocol violations", str(report.violations), "0", report.violations == 0),
    ]


def rss_slope_mib_per_min(samples: Sequence[Sample]) -> float | None:
    """Least-squares slope of RSS over the samples (a steady leak shows here even under the 5 % bar)."""
    if len(samples) < 3:
        return None
    slope, _ = statistics.linear_regression([s.t_s / 60 for s in samples], [s.rss_mib for s in samples])
    return slope


def sample_table(samples: Sequence[Sample]) -> str:
    header = (
        "t (s)",
        "RSS MiB",
        "threads",
        "fds",
        "stream tasks",
        "connections",
        "streams active",
        "engine streams",
        "server CPU %",
    )
    rows = [
        (
            "idle" if s.t_s < 0 else f"{s.t_s:.0f}",
            f"{s.rss_mib:.1f}",
            str(s.threads),
            str(s.fds),
            str(s.stream_tasks),
            str(s.connections),
            str(s.streams_active),
            str(s.engine_streams),
            "-" if s.cpu_pct is None else f"{s.cpu_pct:.0f}",
        )
        for s in samples
    ]
    return markdown(header, rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="load after the warm-up (default 10)")
    parser.add_argument(
        "--warmup", type=float, default=180.0, help="seconds of load before the first sample (default 180)"
    )
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--capacity", type=int, help="measured capacity in streams (default: measure it)")
    parser.add_argument("--load-fraction", type=float, default=0.8, help="of capacity (default 0.8)")
    parser.add_argument("--cancel-rate", type=float, default=0.2, help="barge-in fraction (default 0.2)")
    add_token_rate_argument(parser)
    parser.add_argument("--device", default="cpu", help="the server's --device (default cpu)")
    parser.add_argument("--json", type=Path, help="also write the samples and figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    texts = replies_of(3)
    duration_s = args.warmup + args.minutes * 60
    shape = LoadShape(duration_s, 10.0, args.cancel_rate, args.token_rate, 1, 1, texts)
    print(f"# soak: {machine()}")
    with ServerProcess(*server_flags(args.device, 64, ())) as server:
        assert server.proc is not None
        warm_up(server, shape)
        capacity = args.capacity
        if capacity is None:
            search = LoadShape(SEARCH_STEP_S, 5.0, 0.1, args.token_rate, 1, 1, texts)
            capacity = measure_capacity(server, search)
            print(f"measured capacity: {capacity} streams ({SEARCH_STEP_S:g} s steps)")
        streams = max(1, round(capacity * args.load_fraction))
        print(
            f"load: {streams} streams ({args.load_fraction:g} of capacity {capacity}), cancel rate "
            f"{args.cancel_rate:g}, {args.warmup:g} s warm-up + {args.minutes:g} min, sample every "
            f"{args.interval:g} s; server pid {server.proc.pid}",
            flush=True,
        )
        wait_idle(server)
        sampler = Sampler(server)
        idle_before = sampler.sample(-1.0)
        report, samples = asyncio.run(soak(server, shape, streams, args.warmup, args.interval))
        wait_idle(server)
        idle_after = Sampler(server).sample(-1.0)
    if not samples:
        raise RuntimeError("the load ended before the first sample; lengthen --minutes")
    results = verdicts(report, samples, idle_before, idle_after)
    slope = rss_slope_mib_per_min(samples)
    print("\n## samples (idle rows: before the load, and after every stream ended)\n")
    print(sample_table([idle_before, *samples, idle_after]))
    print(f"\n## load\n\n```\n{report.to_table()}\n```\n")
    print("## targets\n")
    print(
        markdown(
            ("measure", "value", "target", "met"),
            [(v.name, v.value, v.target, "yes" if v.met else "NO") for v in results],
        )
    )
    kinds = ", ".join(f"{k} {v}" for k, v in idle_before.fd_kinds.items())
    print(f"\nopen descriptors idle before the load: {kinds}")
    kinds = ", ".join(f"{k} {v}" for k, v in idle_after.fd_kinds.items())
    print(f"open descriptors idle after the load: {kinds}")
    if slope is not None:
        print(f"\nRSS trend over the samples after warm-up: {slope:+.3f} MiB per minute (least squares)")
    if args.json is not None:
        figures = report.to_dict()  # with the per-stream records, to see when underruns happened
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "streams": streams,
                    "capacity": capacity,
                    "idle_before": asdict(idle_before),
                    "samples": [asdict(s) for s in samples],
                    "idle_after": asdict(idle_after),
                    "targets": [asdict(v) for v in results],
                    "rss_slope_mib_per_min": slope,
                    "load": figures,
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if all(v.met for v in results) else 1


if __name__ == "__main__":
    sys.exit(main())
