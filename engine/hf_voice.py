"""A voice from a local transformers ``VitsModel`` checkpoint and its ``VitsTokenizer`` (e.g. mms-tts).

Only local files are read (``local_files_only=True``): a directory, or a model id already in the Hugging
Face cache. The decoder's weights move into :class:`~engine.decoder.WindowDecoder` (type-1 blocks, the only
kind transformers has); the rest of the model runs as transformers wrote it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import VitsModel, VitsTokenizer

from voxwire.engine.config import MAX_SENTENCE_IDS
from voxwire.engine.decoder import WindowDecoder
from voxwire.engine.latent import SynthesisParams
from voxwire.engine.phonemes import Phonemized, speakable
from voxwire.engine.sentence_stage import SentenceStage
from voxwire.engine.splitting import IdLayout
from voxwire.engine.voice import Voice, VoiceInfo

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def load_hf_voice(
    spec: str,
    device: torch.device,
    dtype: torch.dtype,
    max_sentence_ids: int = MAX_SENTENCE_IDS,
    winograd: bool = True,
) -> Voice:
    model = VitsModel.from_pretrained(spec, local_files_only=True).eval()
    tokenizer = VitsTokenizer.from_pretrained(spec, local_files_only=True)
    config = model.config
    if config.num_speakers > 1:
        raise ValueError(
            f"{spec}: multi-speaker checkpoints ({config.num_speakers} speakers) are not supported"
        )
    decoder = WindowDecoder.from_config(config, resblock_type=1)
    decoder.load_state_dict(
        {name.replace("upsampler.", "ups.", 1): w for name, w in model.decoder.state_dict().items()}
    )
    stage = SentenceStage(model.text_encoder, model.duration_predictor, model.flow)
    info = VoiceInfo(
        id=Path(spec).name if Path(spec).is_dir() else spec,
        language=getattr(tokenizer, "language", None) or "und",
        sample_rate=config.sampling_rate,
    )
    defaults = SynthesisParams(config.noise_scale, config.noise_scale_duration, 1.0 / config.speaking_rate)
    tokenize = _Tokenize(tokenizer)
    return Voice(
        info,
        tokenize,
        tokenize.layout,
        stage,
        decoder,
        defaults,
        device,
        dtype,
        max_sentence_ids=max_sentence_ids,
        winograd=winograd,
    )


class _Tokenize:
    """Token ids per sentence; sentences end after ``.``, ``!`` or ``?`` and whitespace."""

    def __init__(self, tokenizer: VitsTokenizer) -> None:
        self.tokenizer = tokenizer
        vocab: dict[str, int] = tokenizer.get_vocab()
        blank = 0 if tokenizer.add_blank else None  # the tokenizer puts id 0 between characters
        self.layout = IdLayout(
            prefix=() if blank is None else (blank,),
            pad=blank,
            clause_ends=frozenset(vocab[mark] for mark in ",;:.!?" if mark in vocab) - {blank},
            word_ends=frozenset({vocab[" "]}) - {blank} if " " in vocab else frozenset(),
        )

    def __call__(self, text: str) -> Phonemized:
        sentences = (s for s in _SENTENCE_END.split(speakable(text).strip()) if s)
        ids = (self.tokenizer(s)["input_ids"] for s in sentences)
        return Phonemized([sentence for sentence in ids if sentence])
