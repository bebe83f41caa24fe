"""Long sentences cut into bounded pieces: the rules on hand-made ids, then every script on the real voice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.scripts import SCRIPTS
from voxwire.engine.loader import load_voice
from voxwire.engine.splitting import IdLayout, split_ids
from voxwire.engine.voice import Voice

PIPER_LIKE = IdLayout(prefix=(1, 0), suffix=(2,), pad=0, clause_ends=frozenset({8}), word_ends=frozenset({3}))


def piper_ids(symbols: list[int]) -> list[int]:
    """Ids as Piper builds them: ^ _ then each symbol followed by the pad, then $."""
    return [1, 0, *(i for symbol in symbols for i in (symbol, 0)), 2]


def bodies(pieces: list[list[int]], layout: IdLayout) -> list[int]:
    return [i for piece in pieces for i in piece[len(layout.prefix) : len(piece) - len(layout.suffix)]]


@given(
    symbols=st.lists(st.sampled_from([3, 8, 20, 21, 22, 23]), min_size=1, max_size=400),
    max_ids=st.integers(min_value=5, max_value=300),
)
def test_pieces_are_bounded_well_formed_and_lose_nothing(symbols: list[int], max_ids: int) -> None:
    ids = piper_ids(symbols)
    pieces = split_ids(ids, max_ids, PIPER_LIKE)
    assert all(len(piece) <= max_ids for piece in pieces)
    assert all(piece[:2] == [1, 0] and piece[-1] == 2 for piece in pieces)
    assert all(len(piece) > 3 for piece in pieces)  # no empty piece
    assert bodies(pieces, PIPER_LIKE) == ids[2:-1]
    assert all((len(piece) - 3) % 2 == 0 for piece in pieces)  # a symbol never parted from its pad


def test_a_short_sentence_is_left_whole() -> None:
    ids = piper_ids([20, 21, 3, 22])
    assert split_ids(ids, len(ids), PIPER_LIKE) == [ids]


def test_cuts_prefer_a_clause_end_then_a_word_end() -> None:
    # 20 symbols: a comma after the 12th, spaces after the 5th and the 16th; room for 18 symbols per piece.
    symbols = [20] * 20
    symbols[4], symbols[11], symbols[15] = 3, 8, 3
    first, _ = split_ids(piper_ids(symbols), 3 + 2 * 18, PIPER_LIKE)
    assert bodies([first], PIPER_LIKE)[-2:] == [8, 0]  # after the comma, not the later space
    symbols[11] = 20  # no comma: the last space within the room
    first, _ = split_ids(piper_ids(symbols), 3 + 2 * 18, PIPER_LIKE)
    assert len(bodies([first], PIPER_LIKE)) == 2 * 16
    assert split_ids(piper_ids([20] * 20), 3 + 2 * 18, PIPER_LIKE)[0] == piper_ids([20] * 18)  # anywhere


def test_a_layout_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="no room"):
        split_ids(piper_ids([20] * 10), 4, PIPER_LIKE)


@pytest.fixture(scope="module")
def voice() -> Voice:
    return load_voice("joe", "cpu", warm_up=False)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_no_text_in_any_script_makes_a_sentence_over_the_bound(voice: Voice, script: str) -> None:
    phonemized = voice.phonemize(SCRIPTS[script])
    assert phonemized.sentences, "every sample here has something to say"
    assert all(len(piece) <= voice.max_sentence_ids for piece in phonemized.sentences)
    prefix, suffix = voice.layout.prefix, voice.layout.suffix
    assert all(
        tuple(piece[: len(prefix)]) == prefix and tuple(piece[-len(suffix) :]) == suffix
        for piece in phonemized.sentences
    )


def test_pieces_cover_the_whole_sentence(voice: Voice) -> None:
    text = SCRIPTS["emoji"]
    whole = load_voice("joe", "cpu", warm_up=False, max_sentence_ids=100_000).phonemize(text).sentences
    pieces = voice.phonemize(text).sentences
    assert len(pieces) > len(whole)
    assert bodies(pieces, voice.layout) == bodies(whole, voice.layout)


def test_raw_phonemes_pass_through_only_when_allowed(voice: Voice) -> None:
    text = "Say [[ ʃˈiːp ]] now."
    raw = load_voice("joe", "cpu", warm_up=False, allow_raw_phonemes=True).phonemize(text)
    assert voice.phonemize(text).sentences != raw.sentences


def test_symbols_the_voice_lacks_are_reported_not_logged(
    voice: Voice, caplog: pytest.LogCaptureFixture
) -> None:
    allowed = load_voice("joe", "cpu", warm_up=False, allow_raw_phonemes=True)
    phonemized = allowed.phonemize("Hello [[ ☃☃☃ ]] there.")
    assert phonemized.unknown == frozenset({"☃"})
    assert not caplog.records
