"""Cutting a voice's id sequences to a bounded length, so that no sentence stage runs longer than a step.

A sentence stage costs more than linearly in its ids (attention over ids, an alignment of frames by ids), and
some text becomes far more ids than its length suggests: 300 characters of Chinese and emoji became 4,801 ids
for the bundled voice, a step of many seconds on a CPU. Cuts fall after a clause mark (``,`` ``;`` ``:`` and
sentence ends) when one lies in the second half of the allowed length, else after a word boundary, else
anywhere; every piece is wrapped in the voice's sentence prefix and suffix, so each is a well-formed sentence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdLayout:
    """How a voice builds an id sequence: what wraps it, and where its phrases and words end."""

    prefix: tuple[int, ...] = ()
    """Ids every sentence starts with (Piper: ``^ _``)."""
    suffix: tuple[int, ...] = ()
    """Ids every sentence ends with (Piper: ``$``)."""
    pad: int | None = None
    """The id that follows every symbol (Piper's ``_``, a VITS tokenizer's blank), kept with the symbol."""
    clause_ends: frozenset[int] = frozenset()
    word_ends: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.pad is not None and (self.pad in self.clause_ends or self.pad in self.word_ends):
            raise ValueError("the pad id cannot also end a clause or a word")


def split_ids(ids: list[int], max_ids: int, layout: IdLayout) -> list[list[int]]:
    """``ids`` (one sentence, as the voice built it) as pieces of at most ``max_ids`` ids each."""
    points = split_points(ids, max_ids, layout)
    if len(points) == 1:
        return [ids]
    return [[*layout.prefix, *ids[start:end], *layout.suffix] for start, end in points]


def split_points(ids: list[int], max_ids: int, layout: IdLayout) -> list[tuple[int, int]]:
    """Where :func:`split_ids` cuts: ``[(0, len(ids))]`` for a sentence that stays whole; else each piece's
    body as ``[start, end)`` of ``ids`` (a piece is then that body inside the sentence prefix and suffix)."""
    if len(ids) <= max_ids:
        return [(0, len(ids))]
    wrap = len(layout.prefix) + len(layout.suffix)
    step = 1 if layout.pad is None else 2  # a symbol and the pad after it stay together
    room = max_ids - wrap
    if room < step:
        raise ValueError(f"max_ids {max_ids} leaves no room inside the sentence prefix and suffix")
    offset = len(layout.prefix)
    body = ids[offset : len(ids) - len(layout.suffix)]
    room -= room % step
    pieces: list[tuple[int, int]] = []
    start = 0
    while len(body) - start > room:
        cut = _cut(body, start, start + room, step, layout)
        pieces.append((offset + start, offset + cut))
        start = cut
    pieces.append((offset + start, offset + len(body)))
    return pieces


def _cut(body: list[int], start: int, limit: int, step: int, layout: IdLayout) -> int:
    """Where the piece starting at ``start`` ends: the last clause end in the second half of the room, else
    the last word end in its last three quarters, else the room's end (``limit``, a symbol boundary)."""
    room = limit - start
    word = None
    for end in range(limit, start + room // 4, -step):
        symbol = body[end - step]
        if symbol in layout.clause_ends and end - start >= room // 2:
            return end
        if word is None and symbol in layout.word_ends:
            word = end
    return word if word is not None else limit
