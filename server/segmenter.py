"""Streaming sentence segmenter: text arriving in pieces in, speakable segments out.

Clients send text as an LLM writes it, a few characters per frame; each sentence must go to the engine as soon
as it is complete. The segmenter is pure (no I/O, no asyncio, no downloads): :meth:`SentenceSegmenter.push`
appends text and returns the segments that are now certain, :meth:`SentenceSegmenter.flush` returns the rest.

Every decision depends only on the text, never on how it was cut into pieces: a possible boundary is decided
only once the characters that decide it have arrived, and stays undecided (buffered) until then. So the
segments are the same whether the text comes in one piece or one character at a time (except where the
caller asks for a fragment at a moment of its choosing, :meth:`SentenceSegmenter.allow_fragment`).

Rules, in text order:

* **Sentence end** -- a run of ``. ! ? …`` plus any closing quotes/brackets right after it
  (``."`` ``?”`` ``.)`` ``!*``), followed by whitespace and then (after any opening quotes/brackets) a
  character that is not a lowercase letter. So ``wait... what`` and ``"Really?" she asked`` stay whole,
  ``3.14``, ``v2.0.1`` and ``example.com`` never split (no whitespace after the dot), and the boundary is
  emitted as soon as the next sentence's first letter, digit or other non-lowercase character arrives.
* **Abbreviations**, when the terminator is one ``.`` (case-sensitive lists below):

  - never end a sentence: titles and Latin abbreviations (``Dr. Mr. Mrs. Prof. St. vs. e.g. i.e.`` ...),
    single capital initials (``J. R. R. Tolkien``), and a number of up to 3 digits at the start of a line or
    segment (a list marker, ``1. Preheat``);
  - may end a sentence (``etc. Inc. Ltd. Jr. No. Fig. Jan.``-``Dec.`` ... and dotted acronyms such as
    ``U.S. U.K. a.m. Ph.D.``): a sentence ends there only if the next word starts with an uppercase letter
    (``in the U.S. The next`` splits; ``No. 5`` and ``Jan. 2024`` do not). The cost: ``the U.S. Army``
    splits too; we take that, as a sentence that ends on such an abbreviation is the more common case.
* **CJK** ``。！？｡`` end a sentence whatever follows (no spaces in CJK text); closing brackets right
  after them (``。」``) stay with the sentence.
* **Paragraph break** -- a blank line (``\\n\\n``, spaces allowed between) ends a segment even without
  punctuation. A single newline is ordinary whitespace.
* **Early first fragment** -- until the stream's first segment has been emitted, a clause boundary
  (``,`` ``;`` ``:`` or ``–`` followed by whitespace, `` - `` with whitespace on both sides, or ``—``) at
  which the fragment is at least ``first_fragment_min_chars`` long ends a segment, so the first audio does
  not wait for a long first sentence. Later sentences are fragmented this way only when the caller asks
  (:meth:`SentenceSegmenter.allow_fragment`: the stream's listener is about to run out of audio while a
  long sentence is still arriving). ``3,000`` and ``10:30`` are no boundary.
* **Hard cap** -- a segment never exceeds ``max_segment_chars``: when that many characters (plus one) are
  buffered with no boundary decided, the segment is cut at the last whitespace within the cap, or at the cap
  when there is none. This also bounds the buffer.

Segments are stripped of surrounding whitespace (inner whitespace, newlines included, is kept as sent);
a segment with no letter or digit (only punctuation and spaces) is dropped, as the engine would say nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CJK_TERMINATORS = frozenset("。！？｡")
_TERMINATORS = frozenset(".!?…") | _CJK_TERMINATORS
_CLOSERS = frozenset("\"'”’»›)]}*」』》）】〕")
_OPENERS_TEXT = "\"'“‘„«‹([{¿¡*「『《（【〔"
_OPENERS = frozenset(_OPENERS_TEXT)
_CLAUSE_MARKS = frozenset(",;:—–-")
_DASHES = frozenset("—–-")
_SENTENCE_MARK = re.compile("[" + re.escape("".join(sorted(_TERMINATORS))) + "\n]")
"""Characters where a sentence or paragraph may end; scanning jumps from one to the next."""
_SENTENCE_OR_CLAUSE_MARK = re.compile("[" + re.escape("".join(sorted(_TERMINATORS | _CLAUSE_MARKS))) + "\n]")
"""The same plus clause marks, scanned for until the stream's first segment is out."""

_NEVER_ENDS = frozenset(
    {
        "Dr", "Mr", "Mrs", "Ms", "Mx", "Prof", "St", "Mt", "Rev", "Fr", "Gen", "Col", "Capt", "Lt", "Sgt",
        "Gov", "Sen", "Rep", "Pres", "Hon", "vs", "Vs", "cf", "Cf", "viz", "e.g", "E.g", "i.e", "I.e",
    }
)  # fmt: skip
"""Abbreviations that are followed by more of the same sentence (titles, Latin)."""

_MAY_END = frozenset(
    {
        "etc", "Inc", "Ltd", "Co", "Corp", "Bros", "Jr", "Sr", "No", "Nos", "Fig", "Figs", "Vol", "Ch",
        "Sec", "Eq", "Ref", "approx", "ca", "p", "pp", "Ave", "Rd", "Blvd", "Dept",
        "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
    }
)  # fmt: skip
"""Abbreviations that often end a sentence: a sentence ends there only before an uppercase letter."""

_DOTTED_ACRONYM = re.compile(r"[A-Za-z]{1,2}(?:\.[A-Za-z]{1,2})+")
_LIST_MARKER = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class SegmenterConfig:
    """Tuning of :class:`SentenceSegmenter`; one per server, shared by all streams."""

    first_fragment_min_chars: int = 40
    """Early first fragment: cut the stream's first segment at a clause boundary once at least this long.
    A value above ``max_segment_chars`` turns the early fragment off."""
    max_segment_chars: int = 300
    """Hard cap on a segment's length; a run-on is split at the last whitespace before it."""

    def __post_init__(self) -> None:
        if self.first_fragment_min_chars < 0:
            raise ValueError(f"first_fragment_min_chars must be >= 0, got {self.first_fragment_min_chars}")
        if self.max_segment_chars < 1:
            raise ValueError(f"max_segment_chars must be >= 1, got {self.max_segment_chars}")


DEFAULT_CONFIG = SegmenterConfig()


@dataclass(frozen=True, slots=True)
class _Cut:
    """A segment ends just before index ``at``."""

    at: int


@dataclass(frozen=True, slots=True)
class _NoCut:
    """No boundary here; scanning goes on at index ``resume``."""

    resume: int


_Decision = _Cut | _NoCut | None
"""``None``: the characters that decide have not arrived yet."""


class SentenceSegmenter:
    """Turns a stream of text pieces into a stream of speakable segments (see the module doc for rules)."""

    def __init__(self, config: SegmenterConfig = DEFAULT_CONFIG) -> None:
        self._config = config
        self._text = ""
        self._start = 0
        """Index of the current segment's first character; a non-space whenever any text follows it."""
        self._scan = 0
        """Indexes in [_start, _scan) are examined and hold no boundary; a pending decision waits at _scan."""
        self._fragment_allowed = True
        """Whether a clause boundary ends the current segment: for the stream's first segment, and once
        :meth:`allow_fragment` asks for it, until a segment is emitted."""

    @property
    def buffered_chars(self) -> int:
        """Characters held back, waiting for a boundary (at most ``max_segment_chars`` after each push)."""
        return len(self._text) - self._start

    def push(self, text: str) -> list[str]:
        """Append ``text``; return the segments that are now complete (often none)."""
        if not text:
            return []
        self._text += text
        segments = self._advance(at_end=False)
        self._compact()
        return segments

    def allow_fragment(self) -> list[str]:
        """Let the current segment end at a clause boundary, as the first one may (for a listener about to
        run out of audio); return the segments that are now complete. Until a segment is emitted, later
        pushes cut at the next such boundary."""
        if not self._fragment_allowed:
            self._fragment_allowed = True
            self._scan = self._start  # clause marks in text already scanned count now
        segments = self._advance(at_end=False)
        self._compact()
        return segments

    def cut(self) -> list[str]:
        """Return what is buffered up to its last clause boundary, or else its last word boundary, now (the
        stream has waited long enough for a sentence end); the rest, a word that may still be arriving,
        stays buffered. Nothing when the buffer holds a single word."""
        self._skip_leading_space()
        text, start = self._text, self._start
        word = clause = -1
        for i in range(len(text) - 1, start, -1):  # backwards: the first whitespace met is the last word's
            if text[i].isspace():
                if word == -1:
                    word = i
                if text[i - 1] in _CLAUSE_MARKS:
                    clause = i
                    break
        at = clause if clause != -1 else word
        if at == -1:
            return []
        segments = self._take(at)
        self._compact()
        return segments

    def flush(self) -> list[str]:
        """Return everything buffered as segment(s) now, even mid-sentence; the buffer is empty afterwards."""
        segments = self._advance(at_end=True)
        segments += self._take(len(self._text))
        self._text = ""
        self._start = self._scan = 0
        return segments

    # -- scanning --------------------------------------------------------------------------------------

    def _advance(self, *, at_end: bool) -> list[str]:
        segments: list[str] = []
        while True:
            self._skip_leading_space()
            cut = self._find_cut(at_end=at_end)
            if cut is None:
                return segments
            segments += self._take(cut)

    def _find_cut(self, *, at_end: bool) -> int | None:
        """Where the current segment ends, or None if that is not decided yet.

        Only the first ``max_segment_chars + 1`` characters of the segment are looked at: the decision is the
        same whatever comes after them, which is what keeps the result independent of how text is pieced.
        """
        text = self._text
        cap = self._start + self._config.max_segment_chars
        at_cap = len(text) > cap
        limit = cap + 1 if at_cap else len(text)
        final = at_end and not at_cap
        marks = _SENTENCE_OR_CLAUSE_MARK if self._fragment_allowed else _SENTENCE_MARK
        i = self._scan
        while (mark := marks.search(text, i, limit)) is not None:
            i = mark.start()
            char = text[i]
            if char in _TERMINATORS:
                decision = self._at_terminator(i, limit, final)
            elif char == "\n":
                decision = self._at_newline(i, limit, final)
            else:
                decision = self._at_clause_mark(i, limit, final)
            if decision is None:
                break
            if isinstance(decision, _Cut):
                return decision.at
            i = decision.resume
        else:
            i = limit
        if at_cap:
            return self._hard_cut(cap)
        self._scan = i
        return None

    def _at_terminator(self, i: int, limit: int, final: bool) -> _Decision:
        text = self._text
        run_end = i
        while run_end < limit and text[run_end] in _TERMINATORS:
            run_end += 1
        end = run_end
        while end < limit and text[end] in _CLOSERS:
            end += 1
        if end >= limit:
            return _Cut(end) if final else None
        if any(char in _CJK_TERMINATORS for char in text[i:run_end]):
            return _Cut(end)
        if not text[end].isspace():
            return _NoCut(end)
        word = end
        while word < limit and (text[word].isspace() or text[word] in _OPENERS):
            word += 1
        if word >= limit:
            return _Cut(end) if final else None
        return _Cut(end) if self._ends_sentence(i, run_end, text[word]) else _NoCut(end)

    def _ends_sentence(self, i: int, run_end: int, next_char: str) -> bool:
        """Whether the terminator run text[i:run_end] ends a sentence, given the next word's first char."""
        if next_char.islower():
            return False
        if run_end - i != 1 or self._text[i] != ".":
            return True
        word_start = i
        while word_start > self._start and not self._text[word_start - 1].isspace():
            word_start -= 1
        word = self._text[word_start:i].lstrip(_OPENERS_TEXT)
        at_line_start = word_start == self._start or self._text[word_start - 1] == "\n"
        if word in _NEVER_ENDS or (len(word) == 1 and word.isupper()):
            return False
        if at_line_start and _LIST_MARKER.fullmatch(word):
            return False
        if word in _MAY_END or _DOTTED_ACRONYM.fullmatch(word):
            return next_char.isupper()
        return True

    def _at_newline(self, i: int, limit: int, final: bool) -> _Decision:
        text = self._text
        j = i + 1
        while j < limit and text[j] != "\n" and text[j].isspace():
            j += 1
        if j >= limit:
            return _NoCut(j) if final else None
        return _Cut(i) if text[j] == "\n" else _NoCut(j)

    def _at_clause_mark(self, i: int, limit: int, final: bool) -> _Decision:
        text = self._text
        mark = text[i]
        if i + 1 - self._start < self._config.first_fragment_min_chars:
            return _NoCut(i + 1)
        if mark == "-" and (i == self._start or not text[i - 1].isspace()):
            return _NoCut(i + 1)
        if i + 1 >= limit:
            return _NoCut(i + 1) if final else None
        following = text[i + 1]
        boundary = following not in _DASHES if mark == "—" else following.isspace()
        return _Cut(i + 1) if boundary else _NoCut(i + 1)

    def _hard_cut(self, cap: int) -> int:
        """Cut a segment that reached the cap: at the last whitespace up to index ``cap``, else at ``cap``."""
        for j in range(cap, self._start, -1):
            if self._text[j].isspace():
                return j
        return cap

    # -- buffer ----------------------------------------------------------------------------------------

    def _take(self, cut: int) -> list[str]:
        segment = self._text[self._start : cut].strip()
        self._start = self._scan = cut
        if not any(char.isalnum() for char in segment):
            return []
        self._fragment_allowed = False
        return [segment]

    def _skip_leading_space(self) -> None:
        text = self._text
        start = self._start
        while start < len(text) and text[start].isspace():
            start += 1
        self._start = start
        self._scan = max(self._scan, start)

    def _compact(self) -> None:
        if self._start:
            self._text = self._text[self._start :]
            self._scan -= self._start
            self._start = 0
