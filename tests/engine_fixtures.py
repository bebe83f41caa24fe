"""Helpers shared by the engine tests: reference audio from piper-tts, comparisons, varied texts."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from piper import PiperVoice
from piper.config import SynthesisConfig

from voxwire.engine.latent import Latent
from voxwire.engine.voice import Voice
from voxwire.engine.windows import WindowSpec

# Varied sentences for the audio comparisons (short, long, questions, numbers, lists, quotes).
SPEECH = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "Is it raining in Seattle today, or is the sun finally out?",
    "Wow!",
    "On March 3rd, 2021, the price rose from $4.50 to $12.75 in under an hour.",
    "She said, \u201cI'll be there by nine,\u201d but she didn't arrive until eleven.",
    "Dr. Smith lives at 221B Baker Street; his neighbour is a retired engineer.",
    "First we mix the flour, then the eggs, then the milk: slowly, carefully, and without stopping.",
    "Numbers like 3.14159 and 2.71828 appear everywhere in mathematics and physics.",
    "Whether you want to or not, the meeting starts at 10:30 sharp and will run for a full ninety minutes.",
    "Okay.",
    "Voxwire streams speech to thousands of listeners at once, window by window, "
    "without waiting for the whole sentence.",
]


def rel_l2(ours: np.ndarray, reference: np.ndarray) -> float:
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


def as_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float64) / 32767.0


def piper_ids(piper: PiperVoice, text: str) -> list[list[int]]:
    """Phoneme ids per sentence as piper-tts's own ``synthesize`` makes them (empty sentences skipped)."""
    return [piper.phonemes_to_ids(p) for p in piper.phonemize(text) if p]


def piper_audio(piper: PiperVoice, ids: list[int], length_scale: float = 1.0) -> np.ndarray:
    """piper-tts's raw float output from onnxruntime, noise off, before any normalizing or int16 rounding."""
    config = SynthesisConfig(
        noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale, normalize_audio=False
    )
    return np.asarray(piper.phoneme_ids_to_audio(ids, config), dtype=np.float64)


def whole_decode(voice: Voice, latent: Latent) -> np.ndarray:
    """The whole latent as one window: the same as decoding the utterance in one piece."""
    (pcm,) = voice.decode_windows([(latent, WindowSpec(0, latent.frames))])
    return pcm


def poked_audio(voice: Voice, frames: int = 80, poked: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's audio of ``frames`` random latent frames, and of the same with frame ``poked`` moved by
    1.0 (a whole utterance, decoded as one window)."""
    decoder, context = voice.decoder, voice.context_frames
    z = torch.randn(1, decoder.conv_pre.in_channels, frames, generator=torch.Generator().manual_seed(0))
    moved = z.clone()
    moved[:, :, poked] += 1.0
    bounds = torch.tensor([[context, context + frames]])
    with torch.inference_mode():
        a, b = (
            decoder(torch.nn.functional.pad(x, (context, context)), frames, bounds)[0] for x in (z, moved)
        )
    return a, b


def phoneme_texts() -> list[str]:
    """Over 200 varied texts: numbers, money, dates, abbreviations, punctuation, quotes, non-ASCII, emoji."""
    fillers = [
        "42",
        "1,234,567",
        "3.5",
        "-17",
        "1st",
        "22nd",
        "$5.99",
        "\u20ac20",
        "\u00a33.50",
        "50%",
        "10:45 PM",
        "2024-01-05",
        "5/1/2024",
        "January 5th, 2024",
        "Dr. Jones",
        "Mr. & Mrs. Smith",
        "e.g. apples",
        "the U.S.A.",
        "NASA",
        "etc.",
        "caf\u00e9",
        "na\u00efve",
        "Z\u00fcrich",
        "fa\u00e7ade",
        "se\u00f1or",
        "\u00dcbermensch",
        "\U0001f600",
        "\U0001f680 rockets",
        "#hashtag",
        "user@example.com",
        "https://example.org/page",
        "C++",
        "x + y = z",
        "rock-'n'-roll",
        "don't",
        "\u201csmart quotes\u201d",
        "'single quotes'",
        '"double quotes"',
        "(parentheses)",
        "Louis XIV",
    ]
    templates = [
        "I saw {} yesterday.",
        "Is {} correct?",
        "Wow, {}!",
        "They said {}; then they left\u2026 Or did they?",
        "{}",
        "Note: {} \u2014 see above.",
    ]
    texts = [t.format(f) for t, f in itertools.product(templates, fillers)]
    texts += [
        "",
        "   ",
        "...",
        "One. Two! Three? Four",
        "Line one\nline two\n\nline three.",
        "ALL CAPS SHOUTING IS LOUD.",
        "Hello [[ h\u0259l\u02c8o\u028a ]] world.",
        "[[ w\u02c8\u025c\u02d0ld ]] first, then text. And more.",
        "A long list: red, orange, yellow, green, blue, indigo, violet, and more colours than that.",
        "Tabs\tand  double  spaces.",
    ]
    return texts
