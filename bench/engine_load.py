"""The engine under load without the server: how efficiently it runs realtime (or asap) streams.

The engine worker is built as the server builds it for this device (on a CPU: one compute thread per core,
one torch thread each, batches of one) and driven directly, with no network and no event-loop work beside
it. Each of ``--streams`` slots speaks replies of ``--sentences`` sentences (the capacity bench's corpus),
one after another, a new stream each, the text cut into sentences as the server cuts it and given at once;
realtime slots start ``--ramp`` seconds apart. A simulated client plays each stream through a 100 ms jitter
buffer and counts underruns. Admission runs at 100 % of the measured capacity (a refused start waits
0.2 s and is counted); the estimate at the server's default headroom (0.8) is printed beside it.

Per run: streams run, refusals, x-real-time, underruns, first audio p50/p95, each compute thread's busy
share, audio seconds per busy second of one thread (what admission measures), the decoder's input frames
per kept frame (context and padding), the flow's frames per audio frame (context recomputed at chunk
edges) and its calls per audio second (those three from counters wrapped around the voice), and each step
kind's mean batch and mean time, to hold against a cost table (``bench/costs``).

    python bench/engine_load.py [--streams 12] [--duration 30] [--sentences 3] [--asap]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from capacity import machine, pct, replies_of  # bench/capacity.py, beside this script

from voxwire.engine.build import default_max_batch
from voxwire.engine.errors import Overloaded
from voxwire.engine.latent import Latent
from voxwire.engine.loader import load_voice, resolve_device
from voxwire.engine.scheduler import SchedulerConfig
from voxwire.engine.voice import Voice
from voxwire.engine.windows import WindowSpec
from voxwire.engine.worker import EngineWorker
from voxwire.server.segmenter import SentenceSegmenter

JITTER_S = 0.1
DEFAULT_HEADROOM = SchedulerConfig().admission_headroom


class Counted:
    """Counters around one voice's decoder and flow (wrapped on the instance, for this bench only). A flow
    run as a CUDA graph runs no Python to count in: then the flow is not counted (``flow_counted``)."""

    def __init__(self, voice: Voice) -> None:
        self.reset()
        self.flow_counted = not voice.cuda_graphs
        decode, flow = voice._decode, voice.stage.flow.forward
        context = voice.context_frames

        def counted_decode(size: int, jobs: Sequence[tuple[Latent, WindowSpec]]) -> Any:
            self.decoder_in += len(jobs) * (size + 2 * context)
            self.kept += sum(window.frames for _, window in jobs)
            return decode(size, jobs)

        def counted_flow(x: torch.Tensor, mask: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.flow_calls += 1
            self.flow_frames += int(mask.sum())
            return flow(x, mask, *args, **kwargs)

        voice._decode = counted_decode  # type: ignore[method-assign]
        if self.flow_counted:
            voice.stage.flow.forward = counted_flow  # type: ignore[method-assign]

    def reset(self) -> None:
        self.decoder_in = self.kept = self.flow_frames = self.flow_calls = 0


class Run:
    def __init__(self) -> None:
        self.first_audio_s: list[float] = []
        self.audio_s = 0.0
        self.streams = 0
        self.refused = 0
        self.underrun_streams = 0
        self.stall_s = 0.0
        self.busy_s: Counter[str] = Counter()
        self.steps: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        self.step_s: Counter[str] = Counter()

    def on_step(self, kind: str, items: int, seconds: float) -> None:
        self.busy_s[threading.current_thread().name] += seconds
        self.steps[kind] += 1
        self.items[kind] += items
        self.step_s[kind] += seconds

    def per_step(self, kind: str) -> str:
        """Mean items and mean milliseconds of one kind's steps."""
        steps = self.steps[kind]
        if not steps:
            return "-"
        return f"{self.items[kind] / steps:.1f} in {1000 * self.step_s[kind] / steps:.1f} ms"


async def slot(
    worker: EngineWorker, index: int, replies: Sequence[str], until: float, asap: bool, run: Run
) -> None:
    turn = index
    while time.perf_counter() < until:
        try:
            stream = worker.open_stream(asap=asap)
        except Overloaded:
            run.refused += 1
            await asyncio.sleep(0.2)
            continue
        segmenter = SentenceSegmenter()
        for segment in segmenter.push(replies[turn % len(replies)]) + segmenter.flush():
            stream.add_text(segment)
        stream.end_input()
        turn += 7
        started = time.perf_counter()
        play_from: float | None = None
        samples = 0
        stall = 0.0
        async for pcm in stream:
            now = time.perf_counter()
            if play_from is None:
                run.first_audio_s.append(now - started)
                play_from = now + JITTER_S
            elif now > (due := play_from + samples / stream.sample_rate):
                stall += now - due
                play_from += now - due
            samples += len(pcm)
        run.streams += 1
        run.audio_s += samples / stream.sample_rate
        run.underrun_streams += stall > 0
        run.stall_s += stall


async def measure(voice: Voice, streams: int, args: argparse.Namespace, counted: Counted) -> None:
    counted.reset()
    workers = (os.cpu_count() or 1) if voice.device.type == "cpu" else 1
    max_windows, max_sentences = default_max_batch(voice.device)
    config = SchedulerConfig(
        max_batch_windows=max_windows,
        max_batch_sentences=max_sentences,
        workers=workers,
        admission_headroom=1.0,
        max_asap_streams=max(streams, 1),
    )
    run = Run()
    worker = EngineWorker([voice], config, workers=workers, on_step=run.on_step)
    worker.calibrate()  # as the server's engine starts (engine.build)
    worker.start()
    began = time.perf_counter()
    until = began + args.duration
    ramp = 0.0 if args.asap else args.ramp
    replies = replies_of(args.sentences)

    async def delayed(index: int) -> None:
        await asyncio.sleep(index * ramp / streams)
        await slot(worker, index, replies, until, args.asap, run)

    await asyncio.gather(*(delayed(index) for index in range(streams)))
    wall = time.perf_counter() - began
    capacity = worker.stats().capacity_streams
    await worker.stop()
    busy = sum(run.busy_s.values())
    frames = run.audio_s * voice.info.sample_rate / voice.hop_length
    # An asap stream has no playback clock: audio comes as fast as the engine makes it.
    underruns = "-" if args.asap else f"{run.underrun_streams} ({run.stall_s:.2f} s)"
    flow_per_frame, flow_calls = "-", "-"
    if counted.flow_counted:
        flow_per_frame = f"{counted.flow_frames / frames:.3f}"
        flow_calls = f"{counted.flow_calls / run.audio_s:.2f}"
    shares = " / ".join(f"{run.busy_s[name] / wall:.0%}" for name in sorted(run.busy_s))
    print(
        f"| {streams} | {'asap' if args.asap else 'realtime'} | {run.streams} | {run.refused} "
        f"| {run.audio_s / wall:.2f} | {underruns} "
        f"| {1000 * pct(run.first_audio_s, 50):.0f} / {1000 * pct(run.first_audio_s, 95):.0f} | {shares} "
        f"| {run.audio_s / busy:.2f} | {counted.decoder_in / max(counted.kept, 1):.3f} "
        f"| {flow_per_frame} | {flow_calls} "
        f"| {run.per_step('sentences')} | {run.per_step('windows')} | {capacity * DEFAULT_HEADROOM:.1f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[12])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--sentences", type=int, default=3, help="sentences per reply, at least")
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which realtime slots start")
    parser.add_argument("--asap", action="store_true", help="asap streams, all started at once")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--no-cuda-graphs", dest="cuda_graphs", action="store_false", help="on CUDA, run the voice eagerly"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = resolve_device(args.device)
    # tf32 on CUDA, as the server's --dtype auto
    voice = load_voice("joe", device=device, tf32=device.startswith("cuda"), cuda_graphs=args.cuda_graphs)
    graphs = ", CUDA graphs" if voice.cuda_graphs else ""
    print(f"# engine_load: {machine()}; torch {torch.__version__}, device {args.device}{graphs}")
    if voice.device.type == "cuda":  # as the server's engine starts (engine.build)
        started = time.perf_counter()
        max_windows, max_sentences = default_max_batch(voice.device)
        held = voice.prepare_shapes(max_sentences, max_windows)
        print(f"every batch shape prepared in {time.perf_counter() - started:.1f} s ({held} CUDA graphs)")
    counted = Counted(voice)
    print(
        "\n| streams | pace | streams run | refused | x real time | underruns (stall) "
        "| first audio p50 / p95 ms | busy per thread | audio s per busy s | decoder in / kept frames "
        "| flow frames per audio frame | flow calls per audio s | sentence steps: mean batch in mean time "
        "| window steps: mean batch in mean time | estimate at 0.8 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for streams in args.streams:
        asyncio.run(measure(voice, streams, args, counted))


if __name__ == "__main__":
    main()
