"""Pauses in a stream's text: ``<break time="500ms"/>`` tags, found as the text arrives in pieces.

:meth:`BreakParser.push` takes the next piece of text and returns the text and pauses (in seconds) that are
now certain, in order; a ``<`` that may still begin a break tag is held back (at most ``MAX_TAG_CHARS``)
until the characters that decide arrive, so a tag may be split across ``text`` frames.

The rule, also in ``docs/protocol.md``:

- ``<break`` (any case) followed by whitespace, ``/`` or ``>`` starts a break tag. It must be
  ``<break time="N"/>`` (single or double quotes, ``/`` optional) with ``N`` a number of ``ms`` or ``s`` up
  to ``MAX_BREAK_S``, closed by ``>`` within ``MAX_TAG_CHARS`` characters; anything else raises
  :class:`BreakError`, which the server sends as ``invalid_field``. So a mistyped tag is never read aloud.
- Any other ``<`` is text (``a < b``, ``<b>``, ``<breakfast>``) and is spoken as the voice reads it.
"""

from __future__ import annotations

import re

MAX_TAG_CHARS = 64
"""The longest a break tag may be; a longer one is refused, which also bounds what is held back."""
MAX_BREAK_S = 10.0
"""The longest pause one tag may ask for."""

_OPENING = "<break"
_TAG = re.compile(
    r"""<break\s+time\s*=\s*(?P<q>["'])(?P<value>\d{1,5}(?:\.\d{1,3})?)(?P<unit>ms|s)(?P=q)\s*/?>""",
    re.IGNORECASE,
)


class BreakError(ValueError):
    """Text holds something that starts a break tag but is not a valid one."""


class BreakParser:
    """One stream's break tags (pure: no I/O, no clock)."""

    def __init__(self) -> None:
        self._pending = ""
        """The start of what may be a break tag, waiting for the characters that decide."""

    def push(self, text: str) -> list[str | float]:
        """The text and pauses (seconds) that ``text`` completes, in order; raises :class:`BreakError`."""
        data = self._pending + text
        self._pending = ""
        parts: list[str | float] = []
        plain = 0  # data[plain:at] is text not yet returned
        at = data.find("<")
        while at != -1:
            head = data[at : at + len(_OPENING) + 1]
            if not _could_open(head):
                at = data.find("<", at + 1)
                continue
            if len(head) <= len(_OPENING):  # "<", "<br", "<break": the next character decides
                self._pending = data[at:]
                break
            close = data.find(">", at, at + MAX_TAG_CHARS)
            if close == -1:
                if len(data) - at >= MAX_TAG_CHARS:
                    raise BreakError(f"a break tag must close with '>' within {MAX_TAG_CHARS} characters")
                self._pending = data[at:]
                break
            if at > plain:
                parts.append(data[plain:at])
            parts.append(_seconds(data[at : close + 1]))
            plain = close + 1
            at = data.find("<", plain)
        end = len(data) - len(self._pending)
        if end > plain:
            parts.append(data[plain:end])
        return parts

    def end(self) -> list[str]:
        """No more text is coming for now (``flush`` or ``final``): what was held back, as text; raises
        :class:`BreakError` for a break tag left open."""
        pending, self._pending = self._pending, ""
        if len(pending) > len(_OPENING):
            raise BreakError(f"a break tag was left open: {pending!r}")
        return [pending] if pending else []


def _could_open(head: str) -> bool:
    """Whether text starting at a ``<`` is (or may still become, once more arrives) a break tag's start."""
    name = head[: len(_OPENING)]
    if name.lower() != _OPENING[: len(name)]:
        return False
    return len(head) <= len(_OPENING) or head[-1].isspace() or head[-1] in "/>"


def _seconds(tag: str) -> float:
    match = _TAG.fullmatch(tag)
    if match is None:
        raise BreakError(f'not a valid break tag: {tag!r}; write <break time="500ms"/> or time="1.5s"')
    value = float(match["value"])
    seconds = value / 1000 if match["unit"].lower() == "ms" else value
    if seconds > MAX_BREAK_S:
        raise BreakError(f"a break may last at most {MAX_BREAK_S:g} s, not {tag!r}")
    return seconds
