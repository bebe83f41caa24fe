"""A VitsModel checkpoint on disk loads through load_voice and speaks like transformers' own forward."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import VitsConfig, VitsModel, VitsTokenizer

from tests.engine_fixtures import as_float, rel_l2
from voxwire.engine.latent import SynthesisParams
from voxwire.engine.loader import load_voice
from voxwire.engine.voice import Voice
from voxwire.engine.windows import plan_windows
from voxwire.engine.words import word_timings

VOCAB = {c: i for i, c in enumerate("_ abcdefghijklmnopqrstuvwxyz'")}
TINY = VitsConfig(
    vocab_size=len(VOCAB),
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    ffn_dim=32,
    flow_size=8,
    spectrogram_bins=9,
    prior_encoder_num_flows=2,
    prior_encoder_num_wavenet_layers=2,
    posterior_encoder_num_wavenet_layers=1,
    duration_predictor_num_flows=2,
    duration_predictor_filter_channels=16,
    depth_separable_num_layers=2,
    upsample_initial_channel=16,
    upsample_rates=[4, 4],
    upsample_kernel_sizes=[8, 8],
    resblock_kernel_sizes=[3, 5],
    resblock_dilation_sizes=[[1, 3], [1, 2]],
    sampling_rate=16000,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VitsModel]:
    directory = tmp_path_factory.mktemp("tiny-vits")
    (directory / "vocab.json").write_text(json.dumps(VOCAB), encoding="utf-8")
    tokenizer = VitsTokenizer(
        str(directory / "vocab.json"), pad_token="_", unk_token="_", phonemize=False, language="eng"
    )
    torch.manual_seed(0)
    model = VitsModel(TINY).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory, model


@pytest.fixture(scope="module")
def voice(checkpoint: tuple[Path, VitsModel]) -> Voice:
    return load_voice(str(checkpoint[0]), device="cpu")


def test_loads_with_its_own_tokenizer_and_speaks(voice: Voice, checkpoint: tuple[Path, VitsModel]) -> None:
    assert voice.info.sample_rate == 16000
    assert voice.info.id == checkpoint[0].name
    assert voice.hop_length == 16
    ids = voice.phonemize("Hello there. How are you?").sentences
    assert len(ids) == 2
    latents = voice.encode(ids, [voice.default_params] * 2, torch.Generator().manual_seed(0))
    for latent in latents:
        pcm = np.concatenate(voice.decode_windows([(latent, w) for w in plan_windows(latent.frames)]))
        assert pcm.dtype == np.int16
        assert len(pcm) == latent.frames * voice.hop_length > 0


def test_equals_transformers_forward_without_noise(voice: Voice, checkpoint: tuple[Path, VitsModel]) -> None:
    model = checkpoint[1]
    model.noise_scale = 0.0
    model.noise_scale_duration = 0.0
    (ids,) = voice.phonemize("A little test sentence for the tiny voice").sentences
    with torch.inference_mode():
        reference = model(torch.tensor([ids])).waveform[0].numpy()
    (latent,) = voice.encode([ids], [SynthesisParams(0.0, 0.0, 1.0)])
    ours = np.concatenate(voice.decode_windows([(latent, w) for w in plan_windows(latent.frames)]))
    assert len(ours) == len(reference)
    assert rel_l2(as_float(ours), reference) < 1e-3


def test_word_timings_come_from_its_own_durations(voice: Voice) -> None:
    text = "hello there, it's nine."
    pieces, _ = voice.pieces(text, offset=7)
    words = [w for piece in pieces for w in piece.words]
    assert [text[w.start_char - 7 : w.end_char - 7] for w in words] == ["hello", "there", "it's", "nine"]
    [latent] = voice.encode([list(pieces[0].ids)], [voice.default_params])
    timings = word_timings(pieces[0].words, latent.durations.tolist(), voice.hop_length)
    frames = latent.durations.tolist()
    assert timings[0].start == sum(frames[: words[0].first_id]) * voice.hop_length
    assert all(a.end <= b.start for a, b in itertools.pairwise(timings))
    assert timings[-1].end <= latent.frames * voice.hop_length
