"""What crosses between the scheduler and the worker: batches of typed items, and the events their results
become.

The scheduler hands out a :class:`SentenceBatch` (text segments to turn into latents) or a
:class:`WindowBatch` (windows of latents to decode into PCM); the worker runs it on the batch's voice and
hands back, per item, a :class:`SentenceOutput` or one PCM block. The scheduler turns results into events
for the streams' handles: :class:`Audio`, then one :class:`End`; or :class:`Failed` when synthesis failed.

Items and events are made per window on the engine's hot path, so they are plain slotted dataclasses (a
frozen one costs twice as much to build); nothing changes them after they are made.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Generic, Self, TypeAlias, TypeVar

import numpy as np

from voxwire.engine.latent import Latent, SynthesisParams, WordTiming
from voxwire.engine.windows import WindowSpec
from voxwire.engine.words import WordIds


@dataclass(frozen=True, slots=True)
class Segment:
    """A text segment of a stream, and where it starts in all of the stream's text (for word timings)."""

    text: str
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Piece:
    """The ids of a sentence piece left from an earlier step, and the words they speak (characters in the
    stream's text, ids in the piece)."""

    ids: tuple[int, ...]
    words: tuple[WordIds, ...] = ()


@dataclass(slots=True)
class SentenceItem:
    stream: int
    source: Segment | Piece
    """Text to phonemize, or a sentence piece left from an earlier step."""
    params: SynthesisParams


@dataclass(slots=True)
class SentenceOutput:
    """What a sentence item became: the latent of its first sentence piece (None when there was nothing to
    say), and its other pieces, each to run in a later step of its own (so every step stays bounded)."""

    latent: Latent | None
    rest: list[Piece] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Pause:
    """Silence in a stream's text (a ``<break>``): exactly ``samples`` of it at the voice's rate."""

    samples: int


@dataclass(slots=True)
class WindowItem:
    """The frames ``spec`` of ``latent`` to decode: ``samples`` of audio at the voice's rate. A window of
    silence (a pause) has no latent: it is ``samples`` zeros, made without the voice."""

    stream: int
    latent: Latent | None
    spec: WindowSpec
    samples: int


Item = TypeVar("Item", SentenceItem, WindowItem)


@dataclass(frozen=True)
class _Batch(Generic[Item]):
    voice: str
    items: tuple[Item, ...]

    def halves(self) -> tuple[Self, Self]:
        """The first and the second half of the items, as batches of their own (to isolate a failure)."""
        middle = len(self.items) // 2
        return replace(self, items=self.items[:middle]), replace(self, items=self.items[middle:])


class SentenceBatch(_Batch[SentenceItem]):
    """Text segments, each to become latents (one per sentence the voice finds in it)."""


class WindowBatch(_Batch[WindowItem]):
    """Windows of latents, each to become one block of int16 PCM."""


Batch: TypeAlias = SentenceBatch | WindowBatch


@dataclass(slots=True)
class Audio:
    """The next block of a stream's audio: int16 PCM at the voice's rate. ``words``: those whose audio
    starts in this block's sentence, sent with the sentence's first block; their samples count from this
    block's first sample (a word may end in a later block)."""

    stream: int
    pcm: np.ndarray
    words: tuple[WordTiming, ...] = ()


@dataclass(slots=True)
class End:
    """The stream's input has ended and all of it has been spoken; nothing follows."""

    stream: int


@dataclass(slots=True)
class Failed:
    """Synthesis failed for the stream; it is over and nothing follows."""

    stream: int
    reason: str


EngineEvent: TypeAlias = Audio | End | Failed
