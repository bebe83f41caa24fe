"""A simulated client playback clock with a jitter buffer, as pure arithmetic over chunk arrival times.

The model (times in seconds, on any clock that all arrival times share):

- Playback of a stream starts `jitter` after its first chunk arrives: `start = arrival_0 + jitter`.
- The audio plays at the stream's sample rate without pause, so chunk i is needed at
  `needed_i = start + shift + offset_i / sample_rate`, where `offset_i` is the chunk's `offset` field and
  `shift` (0 at first) is the silence added by the re-buffers so far.
- A chunk that arrives after it was needed (`arrival_i > needed_i`, by more than `TOLERANCE_S` so that float
  noise does not count) is an *underrun*: the player ran dry `lateness = arrival_i - needed_i` before it.
  The client then re-buffers: it waits `jitter` more after that arrival before it plays on, so chunk i plays
  at `arrival_i + jitter` and `shift` grows by `lateness + jitter` for the rest of the stream.
- Chunks that arrive early wait in the buffer; the buffer has no size limit.

So a burst of chunks after a stall costs one underrun (the first chunk of the burst), not one per chunk, and
with `jitter = 0` the client plays each late chunk the moment it arrives. The stall time a listener hears is
the sum of `lateness + jitter` over the underruns.

Why a stream ran dry (`underrun_causes`), from its word timings (`start.words`) and the times the client
sent its text: the stall happened at chunk i, at sample `offset_i`, when the player needed it (`needed_i`).
The word it waited for is the first word whose audio starts at or after `offset_i` (the words before it
were already being heard, so the server had their text); with no such word (trailing silence), the last
word. A server speaks a word only once it has the text of the phrase around it: `phrase_end` is how much
of the reply that takes, through the next clause mark and the whitespace after it (a server that is
running low cuts there), or a sentence end and the character after its whitespace, or else the whole
reply (the last phrase waits for `final`). The underrun is the *text's* when the client had sent that much
later than `needed_i - TEXT_MARGIN_S` (no server could have spoken the word in time), else the
*server's*. A stream without word timings, or whose words cannot be found in order in its text, has
underruns of unknown cause.
"""

import bisect
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

TOLERANCE_S = 1e-6
TEXT_MARGIN_S = 0.1
"""Text sent less than this before its audio was needed is too late for any server: that underrun is the
text's. About one engine step and a network hop."""
_PHRASE_END = re.compile(r"""[,;:—]+\s|[.!?…]+["'”’)\]]*(?:\s+\S|\s*$)""")


@dataclass(frozen=True)
class ChunkArrival:
    """One received chunk: when it arrived (s), its first sample's index and its length in samples."""

    at: float
    offset: int
    samples: int


@dataclass(frozen=True)
class Underrun:
    """Chunk `index` arrived `lateness_s` after the player needed it."""

    index: int
    lateness_s: float


class UnderrunCause(enum.StrEnum):
    """Why the player ran dry (see the module doc)."""

    TEXT = "text"
    """The client had not sent the word's text in time: the text's pace."""
    SERVER = "server"
    """The text was there in time; the audio was not."""
    UNKNOWN = "unknown"
    """No word timings to tell."""


@dataclass(frozen=True)
class WordStart:
    """A word of a stream as `chunk.words` gave it: its text and the sample where its audio starts."""

    text: str
    start: int


@dataclass(frozen=True)
class TextSent:
    """A `text` frame: when it was sent (s) and how many characters of the reply had been sent with it."""

    at: float
    chars: int


@dataclass(frozen=True)
class Playback:
    """What the simulated client heard; `start` and `end` are None when no chunk arrived."""

    start: float | None
    end: float | None
    underruns: tuple[Underrun, ...]
    stall_s: float


def simulate_playback(arrivals: Sequence[ChunkArrival], sample_rate: int, jitter_s: float) -> Playback:
    """Play `arrivals` (in arrival order) through a jitter buffer of `jitter_s` seconds (see module doc)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if jitter_s < 0:
        raise ValueError(f"jitter_s must not be negative, got {jitter_s}")
    if not arrivals:
        return Playback(start=None, end=None, underruns=(), stall_s=0.0)
    start = arrivals[0].at + jitter_s
    shift = 0.0
    underruns: list[Underrun] = []
    for index, chunk in enumerate(arrivals):
        needed = start + shift + chunk.offset / sample_rate
        lateness = chunk.at - needed
        if lateness > TOLERANCE_S:
            underruns.append(Underrun(index=index, lateness_s=lateness))
            shift += lateness + jitter_s
    last = arrivals[-1]
    end = start + shift + (last.offset + last.samples) / sample_rate
    return Playback(start=start, end=end, underruns=tuple(underruns), stall_s=shift)


def inter_chunk_gaps(arrival_times: Sequence[float]) -> list[float]:
    """The time between each chunk's arrival and the previous one's (one fewer than the arrivals)."""
    return [later - earlier for earlier, later in pairwise(arrival_times)]


def word_ends(text: str, words: Sequence[WordStart]) -> list[int] | None:
    """The position in `text` just after each of `words`, found in order; None when one is not found."""
    ends: list[int] = []
    position = 0
    for word in words:
        found = text.find(word.text, position)
        if found < 0:
            return None
        position = found + len(word.text)
        ends.append(position)
    return ends


def phrase_end(text: str, position: int) -> int:
    """How much of `text` a server needs to speak the word that ends at `position` (see the module doc)."""
    match = _PHRASE_END.search(text, position)
    return match.end() if match else len(text)


def underrun_causes(
    playback: Playback,
    arrivals: Sequence[ChunkArrival],
    sample_rate: int,
    *,
    text: str,
    words: Sequence[WordStart],
    sent: Sequence[TextSent],
    margin_s: float = TEXT_MARGIN_S,
) -> list[UnderrunCause]:
    """The cause of each of `playback.underruns` (see the module doc).

    `words` are in stream order, `sent` in time order with growing `chars`; all times on the arrivals' clock.
    """
    ends = word_ends(text, words) if words else None
    if ends is None:
        return [UnderrunCause.UNKNOWN for _ in playback.underruns]
    starts = [word.start for word in words]
    sent_chars = [frame.chars for frame in sent]
    causes: list[UnderrunCause] = []
    for underrun in playback.underruns:
        chunk = arrivals[underrun.index]
        needed = chunk.at - underrun.lateness_s
        word = min(bisect.bisect_left(starts, chunk.offset), len(words) - 1)
        frame = bisect.bisect_left(sent_chars, phrase_end(text, ends[word]))
        sent_at = sent[frame].at if frame < len(sent) else float("inf")
        late = sent_at > needed - margin_s
        causes.append(UnderrunCause.TEXT if late else UnderrunCause.SERVER)
    return causes
