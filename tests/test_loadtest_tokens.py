"""The LLM-like token feeder: exact reassembly, token sizes, word-piece shape, seeded determinism."""

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.loadtest.corpus import BUILTIN_REPLIES, read_texts
from voxwire.loadtest.tokens import MAX_TOKEN_CHARS, split_tokens

TRICKY = [
    "",
    " ",
    "a",
    "Hello there, how are you today?",
    "  Leading and trailing spaces.  ",
    "Line one.\nLine two.\n\n",
    "Numbers: 3.14159, $1,284.50 and 10:45 PM!",
    "Unicode: café, naïve, Zürich, 東京, emoji 🎉🎉 done.",
    "Supercalifragilisticexpialidocious is a long word.",
    '"Quoted," she said... (and left) -- [really]?',
]


@pytest.mark.parametrize("text", TRICKY + list(BUILTIN_REPLIES))
def test_tokens_reassemble_exactly_and_stay_within_size(text):
    tokens = split_tokens(text, random.Random(7))
    assert "".join(tokens) == text
    assert all(1 <= len(token) <= MAX_TOKEN_CHARS for token in tokens)


@given(
    st.text(max_size=300), st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=8)
)
def test_any_text_reassembles_exactly(text, seed, max_chars):
    tokens = split_tokens(text, random.Random(seed), max_chars=max_chars)
    assert "".join(tokens) == text
    assert all(1 <= len(token) <= max_chars for token in tokens)


def test_tokens_are_word_pieces_that_never_span_two_words():
    # A token may start with whitespace (" hel") but never has a word character before whitespace in it.
    tokens = split_tokens(" ".join(BUILTIN_REPLIES), random.Random(1))
    assert not [token for token in tokens if re.search(r"\S\s", token)]
    assert all(len(token) == 1 for token in tokens if re.fullmatch(r"[^\w\s]+", token))  # punctuation alone


def test_sizes_vary_over_the_whole_range():
    sizes = {
        len(token) for token in split_tokens("Supercalifragilisticexpialidocious " * 20, random.Random(3))
    }
    assert sizes == set(range(1, MAX_TOKEN_CHARS + 1))


def test_the_same_seed_gives_the_same_tokens_and_another_seed_others():
    text = BUILTIN_REPLIES[7]
    assert split_tokens(text, random.Random(42)) == split_tokens(text, random.Random(42))
    assert split_tokens(text, random.Random(42)) != split_tokens(text, random.Random(43))


def test_max_chars_below_one_is_refused():
    with pytest.raises(ValueError):
        split_tokens("text", random.Random(0), max_chars=0)


def test_builtin_corpus_holds_varied_replies_of_one_to_four_sentences():
    assert len(BUILTIN_REPLIES) >= 50
    assert len(set(BUILTIN_REPLIES)) == len(BUILTIN_REPLIES)
    for reply in BUILTIN_REPLIES:
        sentences = re.findall(r"[.!?](?:\s|$)", reply)
        assert 1 <= len(sentences) <= 5, reply  # "Dr." and "a.m." count too


def test_text_file_is_read_as_lines_or_as_paragraphs(tmp_path):
    blank_separated = tmp_path / "blank_separated.txt"
    blank_separated.write_text("First reply.\n\nSecond reply.\n", encoding="utf-8")
    assert read_texts(blank_separated) == ("First reply.", "Second reply.")

    one_per_line = tmp_path / "one_per_line.txt"
    one_per_line.write_text("  First reply.\nSecond reply.  \n", encoding="utf-8")
    assert read_texts(one_per_line) == ("First reply.", "Second reply.")

    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("\nA reply that\nwraps.\n\n\nAnother\none.\n", encoding="utf-8")
    assert read_texts(paragraphs) == ("A reply that wraps.", "Another one.")


def test_a_text_file_without_text_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no text"):
        read_texts(empty)
