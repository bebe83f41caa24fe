"""A stream's words on its output clock: when each is spoken, which chunk carries it, and what was heard.

The engine times words in samples at the voice's rate from the start of their sentence's audio
(:class:`~voxwire.engine.latent.WordTiming`, from the model's own durations). A stream's session adds them
here as each sentence's first block arrives, with the voice-rate samples that came before it; the timeline
moves them onto the stream's output rate (the resampler's ratio; speed is already in the durations), hands
each out once, with the chunk its audio starts in (:meth:`WordTimeline.due`), and answers how much of the
text a listener has heard by a playhead (:meth:`WordTimeline.heard_chars`). Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from voxwire.engine.latent import WordTiming


@dataclass(frozen=True, slots=True)
class TimedWord:
    """A word of the stream's text (characters ``[start_char, end_char)``) spoken over output samples
    ``[start, end)`` of the stream."""

    start_char: int
    end_char: int
    start: int
    end: int


class WordTimeline:
    def __init__(self, voice_rate: int, output_rate: int) -> None:
        self._voice_rate = voice_rate
        self._output_rate = output_rate
        self._words: list[TimedWord] = []
        self._ends: list[int] = []
        self._given = 0
        """Words handed out by :meth:`due` so far."""

    def add(self, before: int, words: Sequence[WordTiming]) -> None:
        """A sentence's words; ``before``: the stream's voice-rate samples before the sentence's audio."""
        for word in words:
            start, end = self._output(before + word.start), self._output(before + word.end)
            if self._words and start < self._words[-1].end:
                raise ValueError(f"a word at sample {start} starts before the last one ends")
            self._words.append(TimedWord(word.start_char, word.end_char, start, end))
            self._ends.append(end)

    def due(self, end: int | None) -> list[TimedWord]:
        """The words not handed out yet whose audio starts before output sample ``end`` (None: all)."""
        first = self._given
        while self._given < len(self._words) and (end is None or self._words[self._given].start < end):
            self._given += 1
        return self._words[first : self._given]

    def heard_chars(self, played: int) -> int:
        """The end, in the stream's text, of the last word whose audio ended at or before output sample
        ``played``; 0 when none has."""
        heard = bisect_right(self._ends, played)
        return self._words[heard - 1].end_char if heard else 0

    def _output(self, samples: int) -> int:
        if self._voice_rate == self._output_rate:
            return samples
        return (samples * self._output_rate + self._voice_rate // 2) // self._voice_rate
