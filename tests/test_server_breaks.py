"""Break tags in streamed text (``server/breaks.py``): pauses in their place, whatever the pieces."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.server.breaks import MAX_TAG_CHARS, BreakError, BreakParser

TEXT = "Hi there.<break time=\"500ms\"/> Next <b>bold</b>, a < b, <breakfast> ok <BREAK TIME='1.5s' >end"
PARTS = ["Hi there.", 0.5, " Next <b>bold</b>, a < b, <breakfast> ok ", 1.5, "end"]


def parse(pieces: list[str]) -> list[str | float]:
    """All parts, with neighbouring text joined (how text is pieced may cut it anywhere)."""
    parser = BreakParser()
    parts: list[str | float] = []
    for piece in pieces:
        parts += parser.push(piece)
    parts += parser.end()
    joined: list[str | float] = []
    for part in parts:
        if isinstance(part, str) and joined and isinstance(joined[-1], str):
            joined[-1] += part
        else:
            joined.append(part)
    return joined


def test_breaks_become_pauses_and_other_angle_brackets_stay_text() -> None:
    assert parse([TEXT]) == PARTS


def test_a_tag_split_at_every_place_gives_the_same_parts() -> None:
    for cut in range(1, len(TEXT)):
        assert parse([TEXT[:cut], TEXT[cut:]]) == PARTS, cut
    assert parse(list(TEXT)) == PARTS


@given(st.lists(st.integers(0, len(TEXT)), max_size=8))
def test_any_pieces_give_the_same_parts(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(TEXT)]
    assert parse([TEXT[a:b] for a, b in itertools.pairwise(bounds)]) == PARTS


def test_seconds_and_milliseconds() -> None:
    assert parse(['<break time="2s"/>']) == [2.0]
    assert parse(['<break time="0.25s"/>', '<break time="10000ms"/>']) == [0.25, 10.0]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("<break>", "not a valid break tag"),
        ("<break/>", "not a valid break tag"),
        ('<break time="fast"/>', "not a valid break tag"),
        ("<break time=500ms/>", "not a valid break tag"),
        ('<break strength="x"/>', "not a valid break tag"),
        ('<break time="11s"/>', "at most 10 s"),
        ('<break time="500ms"', "left open"),
        ("<break " + "x" * MAX_TAG_CHARS, "within 64 characters"),
    ],
)
def test_anything_else_that_opens_a_break_tag_is_refused(text: str, says: str) -> None:
    with pytest.raises(BreakError, match=says):
        parse([text])


def test_what_may_still_open_a_tag_is_held_back_and_released_as_text_at_the_end() -> None:
    parser = BreakParser()
    assert parser.push("one <br") == ["one "]
    assert parser.end() == ["<br"]
    assert parser.push("<") == []
    assert parser.push("3 two") == ["<3 two"]
