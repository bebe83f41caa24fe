"""The raw results of a load run: one record per stream, and counters; merged across worker processes.

Records keep raw values (each stream's first-audio time, each inter-chunk gap), so that the figures of a run
spread over several processes are computed from all of its values at once, never from per-process summaries.
"""

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    """How a stream ended: the reason of its `done`, or `unfinished` when no `done` came.

    A stream whose `start` was refused with an `error` frame (and no `done`) counts as `error`, except the
    refusals that protocol v1 tells a client to retry elsewhere, which count as `retried`: a `start` refused
    with `shutting_down`, and a `start` that had no answer at all when the server closed the connection
    with 1001 after its `draining` notice (the server never read it). The slot speaks that reply again on a
    new connection.
    """

    COMPLETE = "complete"
    CANCELLED = "cancelled"
    ERROR = "error"
    UNFINISHED = "unfinished"
    RETRIED = "retried"


class Violation(enum.StrEnum):
    """Ways a server can break the guarantees of protocol v1, as the load generator sees them."""

    SEQ_GAP = "seq_gap"
    """A chunk's `seq` is not the previous one's plus 1 (or 0 for the first)."""
    OFFSET_GAP = "offset_gap"
    """A chunk's `offset` is not the previous chunk's offset plus its sample count (or 0 for the first)."""
    SAMPLE_RATE_CHANGED = "sample_rate_changed"
    """A chunk's `sample_rate` differs from the stream's first chunk's."""
    CHUNK_AFTER_DONE = "chunk_after_done"
    """A chunk of a stream whose `done` has arrived."""
    DUPLICATE_DONE = "duplicate_done"
    """A second `done` for one stream."""
    DONE_CHUNKS_MISMATCH = "done_chunks_mismatch"
    """`done.chunks` differs from the number of chunks that arrived."""
    DONE_SAMPLES_MISMATCH = "done_samples_mismatch"
    """`done.samples` differs from the number of samples that arrived."""
    UNEXPECTED_CANCELLED = "unexpected_cancelled"
    """`done` with reason `cancelled` for a stream the client never cancelled."""
    MISSING_DONE = "missing_done"
    """The server closed the connection with this stream still open (the spec sends `done` first), other than
    a `start` it never answered before a close 1001 that followed its `draining` notice (a retry)."""
    UNKNOWN_STREAM = "unknown_stream"
    """A chunk or `done` for a stream id the client never started on this connection."""
    LATE_AFTER_ERROR = "late_after_error"
    """A chunk or `done` for a stream that got an `error` frame and no `done` within the settle time."""
    UNDECODABLE_FRAME = "undecodable_frame"
    """A message that is not a valid server frame (text message, bad msgpack, bad field)."""
    HELLO_NOT_FIRST = "hello_not_first"
    """The first frame on a connection was not `hello`."""
    DUPLICATE_HELLO = "duplicate_hello"
    """A second `hello` on one connection."""


@dataclass(slots=True)
class StreamRecord:
    """What happened to one stream (one reply spoken, from `start` to `done`). Times are in ms."""

    stream: str
    slot: int
    connection: int
    outcome: Outcome
    text_chars: int
    tokens: int
    started_s: float
    """When `start` was sent, in seconds since the run began in this process."""
    first_audio_ms: float | None
    """From the first `text` frame sent to the first chunk's arrival; None when no chunk came."""
    chunks: int
    samples: int
    sample_rate: int | None
    gaps_ms: list[float]
    """The time between successive chunk arrivals (before any cancel)."""
    underruns: int
    stall_ms: float
    cancelled_by_client: bool
    cancel_to_done_ms: float | None
    server_ttfa_ms: float | None
    errors: list[str] = field(default_factory=list)
    """Codes of the `error` frames for this stream, and client-side failures (`client:...`)."""
    violations: list[str] = field(default_factory=list)
    underruns_text: int = 0
    """Underruns the text's pace caused: the word the player waited for was sent too late (see
    `loadtest.playback`)."""
    underruns_server: int = 0
    """Underruns whose word's text was sent in time: the server's."""
    underruns_unknown: int = 0
    """Underruns with no word timings to tell their cause."""

    @property
    def audio_s(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RunResult:
    """Everything one process (or, merged, a whole run) measured.

    `errors` counts server `error` frames by code and client-side failures as `client:<what>`;
    `violations` counts protocol violations by `Violation` kind. Both include events not tied to a record.
    """

    records: list[StreamRecord] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    connections_opened: int = 0
    wall_s: float = 0.0
    server: str | None = None
    """The `server` field of the first `hello` received."""


def merge_results(parts: Sequence[RunResult], wall_s: float | None = None) -> RunResult:
    """One result holding all the records and counts of `parts`.

    `wall_s` is the wall time of the whole run, measured by the caller; without it, the longest part's.
    """
    merged = RunResult()
    for part in parts:
        merged.records.extend(part.records)
        merged.errors.update(part.errors)
        merged.violations.update(part.violations)
        merged.connections_opened += part.connections_opened
        if merged.server is None:
            merged.server = part.server
    merged.wall_s = wall_s if wall_s is not None else max((part.wall_s for part in parts), default=0.0)
    return merged
