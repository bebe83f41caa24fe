"""The scheduler's own cost per engine step, with many active streams: no model, synthetic outputs.

For each stream count, every stream has text queued and latents coming back (one latent of ``--frames``
frames per sentence); a simulated clock runs the engine at exactly real-time capacity, so that streams
stay within their look-ahead and every step has work. Timed: ``schedule(now)`` plus ``update(batch, outputs,
now)``, the two calls the worker makes under its lock per step; building the fake outputs is not timed.

Each cell is the median of ``--repeats`` runs: on a shared VM one run can read a third slower than the next.

    python bench/scheduler.py [--streams 10 100 1000 2000 5000] [--steps 3000] [--batch 1 8 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from voxwire.engine.budget import AudioBudget
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.scheduler import Scheduler, SchedulerConfig, StreamSpec
from voxwire.engine.work import SentenceBatch

RATE = 22050
HOP = 256
PARAMS = SynthesisParams(0.667, 0.8, 1.0)


def run(streams: int, batch: int, steps: int, frames: int) -> dict[str, float]:
    sched = Scheduler(SchedulerConfig(max_batch_windows=batch, max_batch_sentences=batch))
    zeros = torch.zeros(1, frames)
    latent = Latent(zeros, zeros, torch.zeros(0, dtype=torch.long), ready=frames)
    pcm: dict[int, np.ndarray] = {}
    now = 0.0
    for key in range(streams):
        budget = AudioBudget(limit_s=1e9)  # never full: one per connection, as the server makes them
        sched.add_stream(key, StreamSpec("v", RATE, HOP, PARAMS, budget), now)
        sched.add_text(key, "A sentence of about sixty characters, as an LLM would write.")
    timings: list[float] = []
    items = 0
    idle_steps = 0
    for _ in range(steps):
        started = time.perf_counter()
        work = sched.schedule(now)
        scheduled = time.perf_counter()
        if work is None:
            wake = sched.next_wakeup(now)
            now += wake if wake is not None else 0.01
            idle_steps += 1
            continue
        if isinstance(work, SentenceBatch):
            latents = [[latent] for _ in work.items]
            audio_s = 0.0
            updating = time.perf_counter()
            events = sched.update(work, latents, now)
        else:
            blocks = [pcm.setdefault(item.samples, np.zeros(item.samples, np.int16)) for item in work.items]
            audio_s = sum(len(block) for block in blocks) / RATE
            updating = time.perf_counter()
            events = sched.update(work, blocks, now)
        finished = time.perf_counter()
        timings.append((scheduled - started) + (finished - updating))
        items += len(work.items)
        assert not events or audio_s, "no stream ends: its input never does"
        if isinstance(work, SentenceBatch):  # every stream always has its next sentence queued
            for item in work.items:
                sched.add_text(item.stream, "And another sentence follows this one, also about sixty.")
        now += audio_s / streams  # the engine at exactly real-time capacity for this many streams
    timings_us = sorted(t * 1e6 for t in timings)
    return {
        "steps": len(timings),
        "mean_us": statistics.fmean(timings_us),
        "p50_us": timings_us[len(timings_us) // 2],
        "p99_us": timings_us[min(len(timings_us) - 1, round(0.99 * len(timings_us)))],
        "items_per_step": items / max(1, len(timings)),
        "us_per_item": sum(timings_us) / max(1, items),
        "idle_steps": idle_steps,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[10, 100, 1000, 2000, 5000])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--frames", type=int, default=400, help="latent frames per sentence (~4.6 s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell; the table shows their median")
    args = parser.parse_args(argv)
    print(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}; {args.steps} steps each, median of {args.repeats} runs"
    )
    print()
    run(100, max(args.batch), 2000, args.frames)  # warm-up: the first thousands of steps run slower
    print("| streams | max batch | step p50 µs | step mean µs | step p99 µs | items/step | µs per item |")
    print("|---|---|---|---|---|---|---|")
    for batch in args.batch:
        for streams in args.streams:
            runs = [run(streams, batch, args.steps, args.frames) for _ in range(args.repeats)]
            r = {name: statistics.median(run_[name] for run_ in runs) for name in runs[0]}
            print(
                f"| {streams} | {batch} | {r['p50_us']:.1f} | {r['mean_us']:.1f} | {r['p99_us']:.1f} "
                f"| {r['items_per_step']:.1f} | {r['us_per_item']:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
