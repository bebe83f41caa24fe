"""Stream options under load: an ``asap`` stream beside realtime ones, and ``first_chunk_ms``.

Table 1, per realtime load: ``voxwire loadtest``'s realtime streams (replies of three sentences at 60
tokens/s, a 100 ms jitter buffer) for ``--duration`` seconds, once alone and once beside one client that
speaks long texts with ``start.pace: asap`` one after another for the whole run. Per run: the realtime
streams' first audio p50/p95, underruns, refusals and failures, and the asap client's x-real-time (audio
seconds received over the seconds its streams took; a refused asap stream counts as such).

Table 2, one stream at a time on an idle server, alternating: first audio (from sending the text to the
first chunk) and the first chunk's length, with ``first_chunk_ms`` at the server's minimum and at its
default, ``--trials`` each.

    python bench/pace.py [--realtime 4 10] [--duration 30] [--trials 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass

from capacity import (  # bench/capacity.py, beside this
    LoadShape,
    machine,
    markdown,
    pct,
    print_server_errors,
    replies_of,
    wait_idle,
)

from voxwire.loadtest import LoadReport, Outcome, run_load
from voxwire.loadtest.corpus import BUILTIN_REPLIES
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Done, DoneReason, Error, Pace, Start, Text
from voxwire.server.process import ServerProcess

ASAP_TEXT = " ".join(BUILTIN_REPLIES)
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."


@dataclass
class AsapTally:
    audio_s: float = 0.0
    busy_s: float = 0.0
    streams: int = 0
    refused: int = 0
    failed: int = 0

    @property
    def x_real_time(self) -> float:
        return self.audio_s / self.busy_s if self.busy_s else 0.0


async def asap_client(url: str, until: float, tally: AsapTally) -> None:
    """Long texts at ``pace: asap``, one after another, until ``until``; the last one is finished."""
    client = await RecordingClient.open(url)
    rate = client.hello.voices[0].sample_rate
    try:
        while time.monotonic() < until:
            stream = f"asap-{tally.streams + tally.refused + tally.failed}"
            started = time.monotonic()
            await client.send(Start(stream=stream, pace=Pace.ASAP))
            await client.send(Text(stream=stream, text=ASAP_TEXT, final=True))
            end = await client.until(lambda f, s=stream: isinstance(f, Done | Error) and f.stream == s)
            if isinstance(end, Error):
                if end.code == "overloaded":
                    tally.refused += 1
                    await asyncio.sleep(0.5)
                    continue
                end = await client.until(lambda f, s=stream: isinstance(f, Done) and f.stream == s)
            assert isinstance(end, Done)
            tally.busy_s += time.monotonic() - started
            tally.audio_s += end.samples / rate
            if end.reason == DoneReason.COMPLETE:
                tally.streams += 1
            else:
                tally.failed += 1
    finally:
        await client.close()


async def loaded_run(url: str, realtime: int, shape: LoadShape, asap: bool) -> tuple[LoadReport, AsapTally]:
    tally = AsapTally()
    until = time.monotonic() + shape.duration_s
    jobs = [run_load(shape.config(url, realtime))]
    if asap:
        jobs.append(asap_client(url, until, tally))
    report, *_ = await asyncio.gather(*jobs)
    assert isinstance(report, LoadReport)
    return report, tally


def load_row(realtime: int, asap: bool, report: LoadReport, tally: AsapTally) -> list[str]:
    outcomes = report.outcomes
    first = report.first_audio_ms
    return [
        str(realtime),
        "1" if asap else "none",
        str(outcomes[Outcome.COMPLETE] + outcomes[Outcome.CANCELLED]),
        str(outcomes[Outcome.ERROR] + outcomes[Outcome.UNFINISHED] + report.violations),
        f"{first.p50:.0f}" if first.p50 is not None else "-",
        f"{first.p95:.0f}" if first.p95 is not None else "-",
        f"{report.underruns} ({report.streams_with_underruns} streams)",
        f"{tally.x_real_time:.1f} ({tally.streams} done, {tally.refused} refused, {tally.failed} failed)"
        if asap
        else "-",
    ]


async def first_audio(url: str, trials: int) -> dict[str, list[tuple[float, float]]]:
    """Per setting, (first audio ms, first chunk ms) of each trial, the settings alternating."""
    client = await RecordingClient.open(url)
    options = client.hello.options
    assert options is not None and options.first_chunk_ms is not None
    settings = {
        f"minimum ({options.first_chunk_ms.min} ms)": options.first_chunk_ms.min,
        f"default ({options.first_chunk_ms.default} ms)": None,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    try:
        for trial in range(trials):
            for name, ms in settings.items():
                stream = f"t{trial}-{ms}"
                await client.send(Start(stream=stream, first_chunk_ms=ms))
                sent = time.perf_counter()
                await client.send(Text(stream=stream, text=SENTENCE, final=True))
                chunk = await client.until(lambda f, s=stream: isinstance(f, Chunk) and f.stream == s)
                assert isinstance(chunk, Chunk)
                results[name].append(
                    ((time.perf_counter() - sent) * 1000, chunk.samples / chunk.sample_rate * 1000)
                )
                await client.until_done(stream)
    finally:
        await client.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--realtime", type=int, nargs="+", default=[4, 10])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    print(f"# stream options: {machine()}", flush=True)
    shape = LoadShape(
        duration_s=args.duration,
        ramp_s=2.0,
        cancel_rate=0.0,
        token_rate=60.0,
        streams_per_conn=1,
        procs=1,
        texts=replies_of(3),
    )
    rows = []
    with ServerProcess("--max-connections", "256") as server:
        asyncio.run(run_load(shape.config(server.ws_url, 2, duration_s=4.0)))  # warm-up
        for realtime in args.realtime:
            for asap in (False, True):
                wait_idle(server)
                report, tally = asyncio.run(loaded_run(server.ws_url, realtime, shape, asap))
                rows.append(load_row(realtime, asap, report, tally))
                print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
                print_server_errors(server)
        wait_idle(server)
        firsts = asyncio.run(first_audio(server.ws_url, args.trials))
    print(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    header = [
        "realtime streams",
        "asap client",
        "realtime served",
        "refused or failed",
        "first audio p50 ms",
        "p95 ms",
        "underruns",
        "asap x-real-time",
    ]
    print(markdown(header, rows))
    print()
    first_rows = [
        [
            name,
            str(len(values)),
            f"{pct([v[0] for v in values], 50):.0f}",
            f"{pct([v[0] for v in values], 95):.0f}",
            f"{values[0][1]:.0f}",
        ]
        for name, values in firsts.items()
    ]
    print(
        markdown(["first_chunk_ms", "trials", "first audio p50 ms", "p95 ms", "first chunk ms"], first_rows)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
