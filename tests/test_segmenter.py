"""The streaming sentence segmenter: every case is fed whole, one character at a time and in random pieces,
and must give the same segments each way."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.server.segmenter import DEFAULT_CONFIG, SegmenterConfig, SentenceSegmenter

NO_EARLY_FRAGMENT = SegmenterConfig(first_fragment_min_chars=10_000)


def pieces_whole(text: str) -> Iterator[str]:
    yield text


def pieces_by_char(text: str) -> Iterator[str]:
    yield from text


def pieces_random(text: str, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    i = 0
    while i < len(text):
        size = rng.randint(1, 12)
        yield text[i : i + size]
        i += size


def pieces_cycling(text: str, sizes: list[int]) -> Iterator[str]:
    i = 0
    for size in itertools.cycle(sizes):
        if i >= len(text):
            return
        yield text[i : i + size]
        i += size


def feed(pieces: Iterator[str], config: SegmenterConfig) -> list[str]:
    """Push every piece then flush; check the buffer bound after each push."""
    segmenter = SentenceSegmenter(config)
    segments: list[str] = []
    for piece in pieces:
        segments += segmenter.push(piece)
        assert segmenter.buffered_chars <= config.max_segment_chars
    segments += segmenter.flush()
    assert segmenter.buffered_chars == 0
    return segments


def segment(text: str, config: SegmenterConfig = DEFAULT_CONFIG) -> list[str]:
    """Segments of ``text``, after checking that every way of feeding it gives the same ones."""
    whole = feed(pieces_whole(text), config)
    assert feed(pieces_by_char(text), config) == whole, "one char per push differs from one push"
    for seed in range(3):
        assert feed(pieces_random(text, seed), config) == whole, f"random pieces (seed {seed}) differ"
    return whole


CASES = [
    ("simple", "Hello world. How are you? I am fine!", ["Hello world.", "How are you?", "I am fine!"]),
    (
        "titles",
        "Dr. Smith met Mr. Jones and Mrs. Brown at St. Mary's. Ms. Lee came too.",
        ["Dr. Smith met Mr. Jones and Mrs. Brown at St. Mary's.", "Ms. Lee came too."],
    ),
    (
        "e.g. and i.e. before a capital",
        "Bring fruit, e.g. Apples. Or nuts, i.e. Cashews. Done.",
        ["Bring fruit, e.g. Apples.", "Or nuts, i.e. Cashews.", "Done."],
    ),
    (
        "U.S. ends a sentence before a capital",
        "She moved to the U.S. The next year she left.",
        ["She moved to the U.S.", "The next year she left."],
    ),
    (
        "U.S. mid-sentence before lowercase",
        "He works in the U.S. army now. Really.",
        ["He works in the U.S. army now.", "Really."],
    ),
    (
        "etc. before a capital",
        "We had apples, pears, etc. Then we left.",
        ["We had apples, pears, etc.", "Then we left."],
    ),
    (
        "numbered abbreviations before digits",
        "See Fig. 3 and No. 5 from Jan. 2024 here. Done.",
        ["See Fig. 3 and No. 5 from Jan. 2024 here.", "Done."],
    ),
    (
        "a.m. and p.m.",
        "Meet at 9 a.m. tomorrow or 5 p.m. today. Bring coffee.",
        ["Meet at 9 a.m. tomorrow or 5 p.m. today.", "Bring coffee."],
    ),
    (
        "company abbreviations",
        "Acme Inc. reported results. Sales rose at Foo Ltd. Then fell.",
        ["Acme Inc. reported results.", "Sales rose at Foo Ltd.", "Then fell."],
    ),
    (
        "initials",
        "J. R. R. Tolkien wrote books. He died in 1973.",
        ["J. R. R. Tolkien wrote books.", "He died in 1973."],
    ),
    (
        "numbers and versions",
        "Pi is 3.14 and tea costs $4.50 here. Version v2.0.1 is 1.5x faster. It costs $4. Ok.",
        ["Pi is 3.14 and tea costs $4.50 here.", "Version v2.0.1 is 1.5x faster.", "It costs $4.", "Ok."],
    ),
    (
        "domains and emails",
        "Visit example.com or mail a.b@example.org today. See https://x.io/a.b?c=d. Bye.",
        ["Visit example.com or mail a.b@example.org today.", "See https://x.io/a.b?c=d.", "Bye."],
    ),
    (
        "a sentence ending in a number splits before a digit",
        "It happened in 1999. 2000 came next.",
        ["It happened in 1999.", "2000 came next."],
    ),
    (
        "ellipsis mid-sentence and before a capital",
        "Wait... what happened? I don't know... Maybe later.",
        ["Wait... what happened?", "I don't know...", "Maybe later."],
    ),
    ("ellipsis character", "Hmm… okay then. Fine… Next.", ["Hmm… okay then.", "Fine…", "Next."]),
    ("ellipsis at the end", "And then...", ["And then..."]),
    (
        "straight quotes after the terminator",
        'He said "stop." Then he left.',
        ['He said "stop."', "Then he left."],
    ),
    (
        "quoted question followed by lowercase",
        '"Really?" she asked. "Yes!" He nodded.',
        ['"Really?" she asked.', '"Yes!"', "He nodded."],
    ),
    (
        "opening quote before the next sentence",
        'She left. "Wait," he said.',
        ["She left.", '"Wait," he said.'],
    ),
    ("single quotes", "He said 'go.' Then he went.", ["He said 'go.'", "Then he went."]),
    (
        "brackets",
        "(This is an aside.) Next one [really.] Last.",
        ["(This is an aside.)", "Next one [really.]", "Last."],
    ),
    ("markdown emphasis", "**Note.** The end.", ["**Note.**", "The end."]),
    ("?! run", "You did what?! That is wild!!! Ok?", ["You did what?!", "That is wild!!!", "Ok?"]),
    (
        "paragraph breaks without punctuation",
        "Title line\n\nFirst paragraph\n \nSecond.",
        ["Title line", "First paragraph", "Second."],
    ),
    (
        "single newline is whitespace",
        "one line\nsame sentence. Next line.\nAnother.",
        ["one line\nsame sentence.", "Next line.", "Another."],
    ),
    ("CRLF paragraph break", "First part\r\n\r\nSecond part", ["First part", "Second part"]),
    ("abbreviation before a paragraph break", "Ask the Dr.\n\nThe end.", ["Ask the Dr.", "The end."]),
    (
        "list markers",
        "Steps:\n1. Preheat the oven.\n2. Bake it.",
        ["Steps:\n1. Preheat the oven.", "2. Bake it."],
    ),
    (
        "accents and smart quotes",
        "“Où est la gare?” demanda-t-il. “Là-bas.” Élodie rit.",
        ["“Où est la gare?” demanda-t-il.", "“Là-bas.”", "Élodie rit."],
    ),
    ("chinese full stops", "你好。我很好！谢谢？", ["你好。", "我很好！", "谢谢？"]),
    ("chinese closing bracket stays", "他说：「走吧。」然后走了。", ["他说：「走吧。」", "然后走了。"]),
    ("leading and trailing whitespace", "  \n\n  Hello there.   \n\n  ", ["Hello there."]),
    ("no dot-less sentence end needed", "no punctuation at all", ["no punctuation at all"]),
    ("punctuation-only segment between sentences is dropped", "One. ... !!! Two.", ["One.", "Two."]),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_segments(text: str, expected: list[str]) -> None:
    assert segment(text) == expected


@pytest.mark.parametrize("text", ["", "   \n\n  ", "...", "... !!! ?? —", "?!\n\n…", "「」。"])
def test_punctuation_and_whitespace_only_yield_nothing(text: str) -> None:
    assert segment(text) == []


def test_boundary_is_emitted_when_the_next_sentence_starts() -> None:
    segmenter = SentenceSegmenter()
    for char in "Hi there.":
        assert segmenter.push(char) == []
    assert segmenter.push(" ") == []
    assert segmenter.push("N") == ["Hi there."]
    assert segmenter.buffered_chars == 1


def test_boundary_is_emitted_when_the_next_sentence_starts_after_a_quote() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.push('Done. "') == []
    assert segmenter.push("Y") == ["Done."]


def test_cjk_boundary_needs_only_the_next_character() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.push("你好。") == []
    assert segmenter.push("我") == ["你好。"]


def test_abbreviation_waits_for_the_next_word() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.push("I saw Dr.") == []
    assert segmenter.push(" ") == []
    assert segmenter.push("S") == []
    assert segmenter.push("mith. T") == ["I saw Dr. Smith."]
    assert segmenter.flush() == ["T"]


def test_flush_mid_sentence_emits_the_buffer() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.push("Hello there, how") == []
    assert segmenter.buffered_chars == len("Hello there, how")
    assert segmenter.flush() == ["Hello there, how"]
    assert segmenter.buffered_chars == 0
    assert segmenter.push(" are you? Fine") == ["are you?"]
    assert segmenter.flush() == ["Fine"]
    assert segmenter.flush() == []


def test_flush_keeps_a_pending_abbreviation_in_one_segment() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.push("Call Dr. ") == []
    assert segmenter.flush() == ["Call Dr."]


FIRST = "Well, I think that this is going to be a long sentence, because it keeps going. "


def test_first_fragment_at_a_comma_once_long_enough() -> None:
    text = FIRST + "And then, for a very long while after that point, nothing at all happened."
    assert segment(text) == [
        "Well, I think that this is going to be a long sentence,",
        "because it keeps going.",
        "And then, for a very long while after that point, nothing at all happened.",
    ]


def test_first_fragment_is_emitted_while_the_sentence_is_still_arriving() -> None:
    segmenter = SentenceSegmenter()
    head = "Well, I think that this is going to be a long sentence,"
    assert segmenter.push(head) == []
    assert segmenter.push(" ") == [head]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Short, then short. Next.", ["Short, then short.", "Next."]),
        (
            "Here is a rather long opening clause for you; and the rest.",
            ["Here is a rather long opening clause for you;", "and the rest."],
        ),
        (
            "Here is a rather long opening clause for you: the rest.",
            ["Here is a rather long opening clause for you:", "the rest."],
        ),
        (
            "Here is a rather long opening clause for you — the rest.",
            ["Here is a rather long opening clause for you —", "the rest."],
        ),
        (
            "Here is a rather long opening clause for you - the rest.",
            ["Here is a rather long opening clause for you -", "the rest."],
        ),
        (
            "Here is a rather long opening clause for you–the rest.",
            ["Here is a rather long opening clause for you–the rest."],
        ),
        (
            "We counted about 3,000 birds and 12:30 was the time, give or take.",
            ["We counted about 3,000 birds and 12:30 was the time,", "give or take."],
        ),
        (
            "A well-known, self-evident-looking opening sentence-like thing.",
            ["A well-known, self-evident-looking opening sentence-like thing."],
        ),
    ],
)
def test_first_fragment_clause_marks(text: str, expected: list[str]) -> None:
    assert segment(text) == expected


def test_first_fragment_can_be_turned_off() -> None:
    text = FIRST + "Next."
    assert segment(text, NO_EARLY_FRAGMENT) == [FIRST.strip(), "Next."]


def test_first_fragment_length_is_measured_from_the_first_non_space() -> None:
    config = SegmenterConfig(first_fragment_min_chars=6)
    assert segment("     Hi, there, you.", config) == ["Hi, there,", "you."]


def test_hard_cap_splits_a_run_on_at_whitespace() -> None:
    config = SegmenterConfig(max_segment_chars=300)
    text = " ".join(f"word{i}" for i in range(200))
    segments = segment(text, config)
    assert len(segments) > 1
    assert all(len(s) <= 300 for s in segments)
    assert " ".join(segments) == text


def test_hard_cap_without_whitespace_cuts_at_the_cap() -> None:
    config = SegmenterConfig(max_segment_chars=100)
    assert segment("x" * 250, config) == ["x" * 100, "x" * 100, "x" * 50]


def test_hard_cap_resolves_a_terminator_waiting_on_whitespace() -> None:
    config = SegmenterConfig(max_segment_chars=50)
    assert segment("Hello." + " " * 400 + "World.", config) == ["Hello.", "World."]


def test_later_sentences_are_only_split_by_the_cap() -> None:
    config = SegmenterConfig(first_fragment_min_chars=10, max_segment_chars=60)
    text = "First one. Later, " + "clauses, are, never, fragmented, " * 3 + "end."
    segments = segment(text, config)
    assert segments[0] == "First one."
    assert all(len(s) <= 60 for s in segments)
    assert all(len(s) > 40 for s in segments[1:-1])
    assert " ".join(segments) == text


def test_a_later_sentence_is_fragmented_once_asked() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.push("Let me think. If the train leaves at 7:40 and the trip takes") == ["Let me think."]
    assert segmenter.push(" 2 hours and 5 minutes, you'll arrive") == []  # later sentences stay whole ...
    assert segmenter.allow_fragment() == [
        "If the train leaves at 7:40 and the trip takes 2 hours and 5 minutes,"  # ... unless asked
    ]
    assert segmenter.push(" at 9:45, she said, and then left. Bye") == [
        "you'll arrive at 9:45, she said, and then left."
    ]


def test_an_asked_fragment_waits_for_a_long_enough_clause_then_ends_at_the_next_segment() -> None:
    segmenter = SentenceSegmenter()
    assert segmenter.push("Done. Short, so") == ["Done."]
    assert segmenter.allow_fragment() == []  # "Short," is under first_fragment_min_chars
    tail = " the first clause long enough to say on its own will be cut here"
    assert segmenter.push(tail + ", and") == ["Short, so" + tail + ","]
    assert segmenter.push(" the rest, with its comma, waits. End") == ["and the rest, with its comma, waits."]


def test_hundred_kilobytes_one_char_at_a_time() -> None:
    sentences = [
        'Dr. Smith paid $4.50 at example.com, i.e. "cheap." ',
        "Wait... what? ",
        "Then, after a long pause that went on and on, he spoke again. ",
        "no punctuation here for quite a while " * 12,
    ]
    text = "".join(sentences[i % len(sentences)] for i in range(2400))[:100_000]
    segmenter = SentenceSegmenter()
    segments: list[str] = []
    for char in text:
        segments += segmenter.push(char)
        assert segmenter.buffered_chars <= 300
    segments += segmenter.flush()
    assert len(text) == 100_000
    assert "".join("".join(s.split()) for s in segments) == "".join(text.split())


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="max_segment_chars"):
        SegmenterConfig(max_segment_chars=0)
    with pytest.raises(ValueError, match="first_fragment_min_chars"):
        SegmenterConfig(first_fragment_min_chars=-1)


TOKENS = [
    "Dr.", "U.S.", "e.g.", "etc.", "J.", "3.14", "1.", "word", "Word", "é", "你好", "。", ".", "...",
    "…", "?!", "!", ",", ";", ":", " - ", "—", '"', "“", "”", "(", ")", " ", " ", " ", "\n", "\n\n", "x" * 15,
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    tokens=st.lists(st.sampled_from(TOKENS), max_size=60),
    cuts=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=20),
)
def test_any_text_gives_the_same_segments_however_it_is_pieced(tokens: list[str], cuts: list[int]) -> None:
    text = "".join(tokens)
    config = SegmenterConfig(first_fragment_min_chars=8, max_segment_chars=24)
    whole = feed(pieces_whole(text), config)
    assert feed(pieces_cycling(text, cuts), config) == whole
    assert feed(pieces_by_char(text), config) == whole
    for s in whole:
        assert s == s.strip()
        assert 0 < len(s) <= config.max_segment_chars
        assert any(char.isalnum() for char in s)
    assert [c for s in whole for c in s if c.isalnum()] == [c for c in text if c.isalnum()]


def test_cut_speaks_up_to_the_last_clause_boundary_else_the_last_word() -> None:
    seg = SentenceSegmenter(SegmenterConfig(first_fragment_min_chars=1000))
    assert seg.push("Well, I was thinking that we could go") == []
    assert seg.cut() == ["Well,"]  # a clause boundary first
    assert seg.cut() == ["I was thinking that we could"]  # then words; "go" may still be arriving
    assert seg.cut() == []  # a single word waits
    assert seg.push(" home. Yes") == ["go home."]
    assert seg.flush() == ["Yes"]


def test_cut_of_an_empty_or_blank_buffer_gives_nothing() -> None:
    seg = SentenceSegmenter()
    assert seg.cut() == []
    seg.push("   ")
    assert seg.cut() == [] and seg.buffered_chars == 0
