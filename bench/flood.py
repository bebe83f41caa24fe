"""A normal stream's first audio alone, and beside a flood of heavy-script text on other connections.

Starts ``python -m voxwire.server``. A *normal* client runs ``--streams`` streams one after another: each
sends one English sentence with ``final: true``, times the ``text`` frame to the first ``chunk``, then
cancels (the rest of its audio is not what is measured) and waits for its ``done``. First alone, then while
``--heavy`` other connections each keep one stream busy with ``--heavy-chars`` characters of Chinese and
emoji text (read to the end, then started again): the case of issue 11, where 300 CJK characters or 150
emoji become 1,500 to 2,100 phoneme ids, and a sentence stage that long ran as one engine step.

A stream refused or failed counts as such in the table, never as a fast first audio.

    python bench/flood.py [--streams 20] [--heavy 1] [--heavy-chars 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Cancel, Chunk, Done, Error, Start, Text
from voxwire.server.process import ServerProcess

SENTENCE = "The weather today is sunny with a light breeze from the west coast."
CJK = "今天天气很好我们一起去公园散步吧春天来了花都开了鸟儿在树上唱歌"
EMOJI = "😀🚀🎉🌍🔥🍕🎵💡"


def heavy_text(chars: int) -> str:
    """``chars`` characters of Chinese with emoji between, and no punctuation: every segment is as long as
    the segmenter allows (300 characters), the worst case for one sentence stage."""
    pieces = itertools.cycle([CJK, EMOJI])
    text = ""
    while len(text) < chars:
        text += next(pieces)
    return text[:chars]


@dataclass
class Measured:
    first_audio_ms: list[float] = field(default_factory=list)
    refused: int = 0
    failed: int = 0


async def normal_streams(url: str, count: int) -> Measured:
    measured = Measured()
    client = await RecordingClient.open(url)
    try:
        for index in range(count):
            stream = f"n{index}"
            await client.send(Start(stream=stream))
            started = time.perf_counter()
            await client.send(Text(stream=stream, text=SENTENCE, final=True))
            first = await client.until(
                lambda f, s=stream: isinstance(f, Chunk | Done | Error) and getattr(f, "stream", None) == s
            )
            if isinstance(first, Chunk):
                measured.first_audio_ms.append((time.perf_counter() - started) * 1000)
                await client.send(Cancel(stream=stream))
                await client.until_done(stream)
            elif isinstance(first, Error):
                if first.code == "overloaded":
                    measured.refused += 1
                else:
                    measured.failed += 1
                    await client.until_done(stream)
            else:
                measured.failed += 1  # done before any audio
            await asyncio.sleep(0.3)  # a pause between turns, as a conversation has
    finally:
        await client.close()
    return measured


async def heavy_client(url: str, text: str, busy: asyncio.Event, stop: asyncio.Event) -> int:
    """Keep one heavy stream going until ``stop``; the number of heavy streams started."""
    client = await RecordingClient.open(url)
    started = 0
    try:
        while not stop.is_set():
            stream = f"h{started}"
            started += 1
            await client.send(Start(stream=stream))
            await client.send(Text(stream=stream, text=text, final=True))
            busy.set()
            done = asyncio.create_task(client.until_done(stream))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                await client.send(Cancel(stream=stream))
                await done
            stopped.cancel()
    finally:
        await client.close()
    return started


async def flood_round(url: str, count: int, heavy: int, chars: int) -> Measured:
    stop = asyncio.Event()
    busy = [asyncio.Event() for _ in range(heavy)]
    text = heavy_text(chars)
    floods = [asyncio.create_task(heavy_client(url, text, busy[i], stop)) for i in range(heavy)]
    await asyncio.gather(*(event.wait() for event in busy))
    try:
        return await normal_streams(url, count)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*floods)


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--heavy", type=int, default=1, help="heavy connections beside the normal one")
    parser.add_argument("--heavy-chars", type=int, default=4000)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; {args.streams} normal streams per condition"
    )
    rows = []
    with ServerProcess("--max-connections", "64") as server:
        asyncio.run(normal_streams(server.ws_url, 2))  # warm-up
        alone = asyncio.run(normal_streams(server.ws_url, args.streams))
        flood = asyncio.run(flood_round(server.ws_url, args.streams, args.heavy, args.heavy_chars))
    for name, m in (("alone", alone), (f"beside {args.heavy} heavy stream(s)", flood)):
        served = len(m.first_audio_ms)
        rows.append(
            f"| {name} | {served} | {m.refused} | {m.failed} | {pct(m.first_audio_ms, 50)} | "
            f"{pct(m.first_audio_ms, 95)} | {pct(m.first_audio_ms, 100)} |"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print()
    print("| normal stream | served | refused | failed | first audio p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if alone.first_audio_ms and flood.first_audio_ms:
        ratio = float(pct(flood.first_audio_ms, 95)) / float(pct(alone.first_audio_ms, 95))
        print(f"\np95 beside the flood / p95 alone: {ratio:.2f}")
        print(f"(mean alone {statistics.fmean(alone.first_audio_ms):.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
