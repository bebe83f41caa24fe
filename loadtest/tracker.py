"""The streams of one client connection: what was sent and received, and the protocol guarantees checked.

Pure bookkeeping, no I/O: the connection code reports each sent frame and each received frame with the time
it happened (seconds on one monotonic clock), and turns each finished stream into a `StreamRecord`.

Checks, per stream: `seq` counts 0, 1, 2, ... without gaps; each `offset` is the previous chunk's offset plus
its sample count (the first is 0); every chunk has the first chunk's `sample_rate`; exactly one `done`, after
which no chunk comes; `done.chunks` and `done.samples` equal what arrived; reason `cancelled` only after the
client's `cancel`. A chunk that arrives between the client's `cancel` and the `done` is fine (barge-in races
with the audio in flight). Each gap is counted once: after a skipped `seq`, the next chunk is checked
against the `seq` it carried, not against the missing one.

Drains: after the server's `draining` notice, a `start` refused with `shutting_down`, or one that had no
answer at all when the server then closed with 1001 (the server never read it), is a retry, not a violation.
A frame type this client does not know is ignored, as the spec asks of clients.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import assert_never

from voxwire.protocol import (
    Chunk,
    Done,
    DoneReason,
    Draining,
    Error,
    ErrorCode,
    Hello,
    ProtocolError,
    ServerFrame,
)

from .playback import (
    ChunkArrival,
    TextSent,
    UnderrunCause,
    WordStart,
    inter_chunk_gaps,
    simulate_playback,
    underrun_causes,
)
from .results import Outcome, StreamRecord, Violation

ERROR_SETTLE_S = 1.0
"""How long a stream that got an `error` frame waits for its `done` before it is given up. A refused `start`
gets an `error` and no `done` (the stream was never accepted), so the client cannot wait for one forever."""


@dataclass(slots=True)
class StreamState:
    """One stream in flight on a connection."""

    stream: str
    slot: int
    text_chars: int
    tokens: int
    started_at: float
    last_activity: float
    """When the client last sent a frame of this stream or received one for it."""
    first_text_at: float | None = None
    cancel_sent_at: float | None = None
    error_at: float | None = None
    next_seq: int = 0
    next_offset: int = 0
    chunks: int = 0
    samples: int = 0
    sample_rate: int | None = None
    arrivals: list[ChunkArrival] = field(default_factory=list)
    """The chunks that arrived before any `cancel` (what the listener would hear)."""
    text: str = ""
    """The reply the client speaks on this stream (to find its words in)."""
    sent: list[TextSent] = field(default_factory=list)
    """Each `text` frame sent, with the reply's characters sent so far."""
    words: list[WordStart] = field(default_factory=list)
    """The word timings of `arrivals` (`chunk.words`), in order."""
    done: Done | None = None
    done_at: float | None = None
    lost: bool = False
    """The connection ended with this stream open."""
    retry: bool = False
    """The server refused the `start` in a way the spec tells clients to retry elsewhere (see the module)."""
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """No more frames of this stream can come: its `done` arrived or its connection is gone."""
        return self.done is not None or self.lost

    @property
    def input_over(self) -> bool:
        """The client should send no more text: the stream was cancelled, failed, or is finished."""
        return self.finished or self.cancel_sent_at is not None or self.error_at is not None


class ConnectionTracker:
    """The streams of one connection. Counts go into the shared `errors` and `violations` counters.

    `receive` returns the stream whose waiter should wake up (its `done` or `error` arrived), else None.
    """

    def __init__(
        self, connection: int, *, jitter_s: float, errors: Counter[str], violations: Counter[str]
    ) -> None:
        self.connection = connection
        self.hello: Hello | None = None
        self._jitter_s = jitter_s
        self._errors = errors
        self._violations = violations
        self._frames = 0
        self._active: dict[str, StreamState] = {}
        self._ended: dict[str, bool] = {}  # stream id -> whether its done arrived
        self.draining_at: float | None = None
        """When the server's `draining` notice arrived: no `start` should follow on this connection."""

    @property
    def active(self) -> int:
        return len(self._active)

    # -- what the client sent --------------------------------------------------------------------------

    def open(
        self, stream: str, *, slot: int, text_chars: int, tokens: int, at: float, text: str = ""
    ) -> StreamState:
        """A `start` for `stream` was sent at `at`, to speak `text`. Stream ids must be unique on a
        connection."""
        if stream in self._active or stream in self._ended:
            raise ValueError(f"stream id {stream!r} was already used on connection {self.connection}")
        state = StreamState(stream, slot, text_chars, tokens, started_at=at, last_activity=at, text=text)
        self._active[stream] = state
        return state

    def text_sent(self, state: StreamState, at: float, chars: int = 0) -> None:
        """A `text` frame of `chars` characters of the reply was sent at `at`."""
        if state.first_text_at is None:
            state.first_text_at = at
        state.last_activity = at
        state.sent.append(TextSent(at, (state.sent[-1].chars if state.sent else 0) + chars))

    def cancel_sent(self, state: StreamState, at: float) -> None:
        state.cancel_sent_at = at
        state.last_activity = at

    # -- what the server sent --------------------------------------------------------------------------

    def undecodable(self, error: ProtocolError) -> None:
        """A message that `decode_server` refused (counted on its stream too, when it names an open one)."""
        self._frames += 1
        if error.code == ErrorCode.UNKNOWN_TYPE:
            self._errors["client:unknown_frame_type"] += 1  # a newer server's frame: ignored
            return
        state = self._active.get(error.stream) if error.stream is not None else None
        self._violation(Violation.UNDECODABLE_FRAME, state)

    def receive(self, frame: ServerFrame, at: float) -> StreamState | None:
        self._frames += 1
        if self._frames == 1 and not isinstance(frame, Hello):
            self._violation(Violation.HELLO_NOT_FIRST, None)
        match frame:
            case Hello():
                if self.hello is not None:
                    self._violation(Violation.DUPLICATE_HELLO, None)
                else:
                    self.hello = frame
                return None
            case Chunk():
                self._chunk(frame, at)
                return None
            case Done():
                return self._done(frame, at)
            case Error():
                return self._error(frame, at)
            case Draining():
                if self.draining_at is None:
                    self.draining_at = at
                return None
            case _:
                assert_never(frame)

    def _chunk(self, chunk: Chunk, at: float) -> None:
        state = self._stream_of(chunk.stream, Violation.CHUNK_AFTER_DONE)
        if state is None:
            return
        if state.done is not None:
            self._violation(Violation.CHUNK_AFTER_DONE, state)
            return
        if chunk.seq != state.next_seq:
            self._violation(Violation.SEQ_GAP, state)
        if chunk.offset != state.next_offset:
            self._violation(Violation.OFFSET_GAP, state)
        if state.sample_rate is None:
            state.sample_rate = chunk.sample_rate
        elif chunk.sample_rate != state.sample_rate:
            self._violation(Violation.SAMPLE_RATE_CHANGED, state)
        state.next_seq = chunk.seq + 1
        state.next_offset = chunk.offset + chunk.samples
        state.chunks += 1
        state.samples += chunk.samples
        state.last_activity = at
        if state.cancel_sent_at is None:
            state.arrivals.append(ChunkArrival(at=at, offset=chunk.offset, samples=chunk.samples))
            state.words.extend(WordStart(text, start) for text, start, _ in chunk.words or ())

    def _done(self, done: Done, at: float) -> StreamState | None:
        state = self._stream_of(done.stream, Violation.DUPLICATE_DONE)
        if state is None:
            return None
        if state.done is not None:
            self._violation(Violation.DUPLICATE_DONE, state)
            return None
        state.done = done
        state.done_at = at
        state.last_activity = at
        if done.chunks != state.chunks:
            self._violation(Violation.DONE_CHUNKS_MISMATCH, state)
        if done.samples != state.samples:
            self._violation(Violation.DONE_SAMPLES_MISMATCH, state)
        if done.reason == DoneReason.CANCELLED and state.cancel_sent_at is None:
            self._violation(Violation.UNEXPECTED_CANCELLED, state)
        return state

    def _error(self, error: Error, at: float) -> StreamState | None:
        self._errors[str(error.code)] += 1
        state = self._active.get(error.stream) if error.stream is not None else None
        if state is None or state.done is not None:
            return None
        state.errors.append(str(error.code))
        state.last_activity = at
        if state.error_at is None:
            state.error_at = at
            state.retry = error.code == ErrorCode.SHUTTING_DOWN and not state.chunks
        return state

    def _stream_of(self, stream: str, after_done: Violation) -> StreamState | None:
        """The active stream `stream`; else count why a frame for it is wrong and return None."""
        state = self._active.get(stream)
        if state is None:
            ended_with_done = self._ended.get(stream)
            if ended_with_done is None:
                self._violation(Violation.UNKNOWN_STREAM, None)
            else:
                self._violation(after_done if ended_with_done else Violation.LATE_AFTER_ERROR, None)
        return state

    def _violation(self, kind: Violation, state: StreamState | None) -> None:
        self._violations[str(kind)] += 1
        if state is not None:
            state.violations.append(str(kind))

    # -- ends ------------------------------------------------------------------------------------------

    def lose_all(self, *, server_closed: bool, close_code: int | None = None) -> list[StreamState]:
        """The connection ended; every open stream is lost. Returns them (to wake their waiters).

        When the server closed it, each stream without its `done` is a `missing_done` violation, except one
        that heard nothing back when the close was a 1001 after a `draining` notice: the server answers every
        `start` it reads before that close, so it never read this one, and the client retries it.
        """
        drained = self.draining_at is not None and close_code == 1001
        lost = [state for state in self._active.values() if state.done is None and not state.lost]
        for state in lost:
            state.lost = True
            if not server_closed:
                continue
            if drained and not state.chunks and state.error_at is None:
                state.retry = True
            elif not state.retry:  # (a start refused with shutting_down is owed no done)
                self._violation(Violation.MISSING_DONE, state)
        return lost

    def close(self, state: StreamState, *, give_up: str | None = None) -> StreamRecord:
        """Retire `state` and make its record. `give_up` names why the client stopped waiting, if it did
        (an `errors` code such as `client:stream_timeout`, counted here)."""
        del self._active[state.stream]
        self._ended[state.stream] = state.done is not None
        if give_up is not None:
            self._errors[give_up] += 1
            state.errors.append(give_up)
        if state.done is not None:
            outcome = Outcome(str(state.done.reason))
        elif state.retry:
            outcome = Outcome.RETRIED
        elif state.error_at is not None:
            outcome = Outcome.ERROR
        else:
            outcome = Outcome.UNFINISHED
        arrivals = state.arrivals
        underruns, stall_s, first_audio_ms = 0, 0.0, None
        causes: list[UnderrunCause] = []
        if arrivals and state.sample_rate is not None:
            playback = simulate_playback(arrivals, state.sample_rate, self._jitter_s)
            underruns, stall_s = len(playback.underruns), playback.stall_s
            causes = underrun_causes(
                playback, arrivals, state.sample_rate, text=state.text, words=state.words, sent=state.sent
            )
        if arrivals and state.first_text_at is not None:
            first_audio_ms = (arrivals[0].at - state.first_text_at) * 1000
        cancel_to_done_ms = None
        if state.cancel_sent_at is not None and state.done_at is not None:
            cancel_to_done_ms = (state.done_at - state.cancel_sent_at) * 1000
        return StreamRecord(
            stream=state.stream,
            slot=state.slot,
            connection=self.connection,
            outcome=outcome,
            text_chars=state.text_chars,
            tokens=state.tokens,
            started_s=state.started_at,
            first_audio_ms=first_audio_ms,
            chunks=state.chunks,
            samples=state.samples,
            sample_rate=state.sample_rate,
            gaps_ms=[gap * 1000 for gap in inter_chunk_gaps([arrival.at for arrival in arrivals])],
            underruns=underruns,
            stall_ms=stall_s * 1000,
            cancelled_by_client=state.cancel_sent_at is not None,
            cancel_to_done_ms=cancel_to_done_ms,
            server_ttfa_ms=state.done.ttfa_ms if state.done is not None else None,
            errors=state.errors,
            violations=state.violations,
            underruns_text=causes.count(UnderrunCause.TEXT),
            underruns_server=causes.count(UnderrunCause.SERVER),
            underruns_unknown=causes.count(UnderrunCause.UNKNOWN),
        )
