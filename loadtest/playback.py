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
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

TOLERANCE_S = 1e-6


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
