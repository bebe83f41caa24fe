"""Which of a voice's ids speak which of the client's words.

A voice turns a whole text segment into ids (espeak-ng phonemes, or a VITS tokenizer's characters): that
is what it speaks, so word timings must come from those ids and the durations the model gives them, not
from a second phonemization. What the ids do not say is which word each came from: espeak-ng speaks
``7:40`` as two words, ``$1,234`` as seven, and runs ``of the`` together as one. So each word of the text
is also turned into ids on its own, and the sentence's symbols are matched to the words' symbols in order
(:class:`difflib.SequenceMatcher`, which finds the long runs they share); symbols in a stretch that does
not match go to the words of the stretch opposite them, in proportion. Word separators (the voice's space)
and clause marks belong to no word: they are the pauses between words.

A word here is a run of non-space characters without the punctuation around it (``"Hello,"`` is
``Hello``; ``7:40`` and ``U.S.A.`` stay whole): the word as the client wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import accumulate

from voxwire.engine.latent import WordTiming
from voxwire.engine.splitting import IdLayout

_TOKEN = re.compile(r"\S+")
_INITIALS = re.compile(r"(?:\w\.)+\w")
_EDGE_PUNCTUATION = "\"'()[]{}<>«»“”‘’„‚‹›,;:!?¡¿…—–-*_~`/\\|"


@dataclass(frozen=True, slots=True)
class WordIds:
    """A word of the text (characters ``[start_char, end_char)``) and the ids that speak it,
    ``[first_id, end_id)`` of one sentence (its symbols and the pads after them)."""

    start_char: int
    end_char: int
    first_id: int
    end_id: int


def text_words(text: str) -> list[tuple[int, int]]:
    """The words of ``text`` as character spans: non-space runs, stripped of the punctuation around them
    (``Dr.`` is ``Dr``; initials keep their last dot: ``U.S.A.``)."""
    words: list[tuple[int, int]] = []
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        while start < end and text[start] in _EDGE_PUNCTUATION:
            start += 1
        while end > start and text[end - 1] in _EDGE_PUNCTUATION + ".":
            end -= 1
        if end < match.end() and text[end] == "." and _INITIALS.fullmatch(text, start, end):
            end += 1  # U.S.A. keeps its last dot
        if end > start and any(char.isalnum() or not char.isascii() for char in text[start:end]):
            words.append((start, end))
    return words


def symbols(ids: Sequence[int], layout: IdLayout) -> list[int]:
    """Positions of the symbols in one sentence's ids: inside its prefix and suffix, and not pads."""
    end = len(ids) - len(layout.suffix)
    return [i for i in range(len(layout.prefix), end) if ids[i] != layout.pad]


def align_words(
    text: str,
    sentences: Sequence[Sequence[int]],
    word_ids: Callable[[str], list[int]],
    layout: IdLayout,
) -> list[list[WordIds]]:
    """For each sentence (the ids a voice made of ``text``), the words of ``text`` it speaks, in order.

    ``word_ids(word)`` gives the symbol ids the voice makes of a word on its own. A word whose symbols
    match none of the sentence's, in a stretch with no symbol left over, is in no sentence."""
    separators = layout.word_ends | layout.clause_ends
    spoken: list[tuple[int, int]] = []  # (sentence, position) of each symbol that belongs to a word
    groups: list[int] = []  # which run of symbols between separators each is in
    group = 0
    for index, ids in enumerate(sentences):
        for i in symbols(ids, layout):
            if ids[i] in separators:
                group += 1
            else:
                spoken.append((index, i))
                groups.append(group)
        group += 1
    words = text_words(text)
    own: list[int] = []  # the words' own symbols, concatenated
    owner: list[int] = []  # which word each of them is
    for number, (start, end) in enumerate(words):
        mine = [i for i in word_ids(text[start:end]) if i not in separators]
        own += mine
        owner += [number] * len(mine)
    sentence_ids = [sentences[s][i] for s, i in spoken]
    labels = _labels(sentence_ids, groups, own, owner)
    spans: list[dict[int, list[int]]] = [{} for _ in sentences]  # word -> [first id, end id]
    for (sentence, position), word in zip(spoken, labels, strict=True):
        if word is None:
            continue
        ids = sentences[sentence]
        end = position + 1
        while end < len(ids) - len(layout.suffix) and ids[end] == layout.pad:
            end += 1
        span = spans[sentence].setdefault(word, [position, end])
        span[0], span[1] = min(span[0], position), max(span[1], end)
    return [
        [WordIds(words[word][0], words[word][1], first, end) for word, (first, end) in sorted(found.items())]
        for found in spans
    ]


def _labels(spoken: list[int], groups: list[int], own: list[int], owner: list[int]) -> list[int | None]:
    """The word of each spoken symbol: that of the word symbol it matches. In a stretch that matches
    nothing, a symbol with no separator between it and the match before (or after) it goes with that
    match's word; the others go to the word symbols opposite the stretch, in proportion (with none
    opposite, to the word before, or at the start the word after)."""
    labels: list[int | None] = [None] * len(spoken)
    if not own:
        return labels
    matcher = SequenceMatcher(None, spoken, own, autojunk=False)
    a = b = 0
    for block in matcher.get_matching_blocks():  # ends with a zero-size block at both ends
        gap_a, gap_b = block.a - a, block.b - b
        for k in range(gap_a):
            if a and groups[a + k] == groups[a - 1]:
                labels[a + k] = labels[a - 1]
            elif block.size and groups[a + k] == groups[block.a]:
                labels[a + k] = owner[block.b]
            elif gap_b:
                labels[a + k] = owner[b + k * gap_b // gap_a]
            else:
                labels[a + k] = owner[b - 1] if b else owner[0]
        for k in range(block.size):
            labels[block.a + k] = owner[block.b + k]
        a, b = block.a + block.size, block.b + block.size
    return labels


def word_timings(
    words: Sequence[WordIds], durations: Sequence[int], hop_length: int
) -> tuple[WordTiming, ...]:
    """When each word is spoken, in samples from its sentence's start: the frames the model gave the
    sentence's ids before the word's first id, and through its last (``durations``: frames per id)."""
    ends = [frames * hop_length for frames in accumulate(durations, initial=0)]
    return tuple(WordTiming(w.start_char, w.end_char, ends[w.first_id], ends[w.end_id]) for w in words)
