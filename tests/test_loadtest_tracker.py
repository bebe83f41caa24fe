"""Guarantee checks of one connection's streams, fed hand-made frames with times (no sockets)."""

from collections import Counter

import pytest

from voxwire.loadtest.results import Outcome
from voxwire.loadtest.tracker import ConnectionTracker, StreamState
from voxwire.protocol import Chunk, Done, Draining, Error, ErrorCode, Hello, Limits, ProtocolError, VoiceInfo

RATE = 10_000  # so that a chunk of 1000 samples plays for 0.1 s
HELLO = Hello(
    server="fake/1",
    voices=(VoiceInfo("v", "en", RATE),),
    sample_rates=(RATE,),
    limits=Limits(
        max_streams=4,
        max_text_bytes=1000,
        max_frame_bytes=1000,
        max_connections=4,
        max_buffered_audio_ms=1000,
    ),
)


class Conn:
    """A tracker with its counters, already past `hello`."""

    def __init__(self, jitter_s: float = 0.0) -> None:
        self.errors: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.tracker = ConnectionTracker(3, jitter_s=jitter_s, errors=self.errors, violations=self.violations)
        self.tracker.receive(HELLO, 0.0)

    def stream(self, name: str = "s", at: float = 0.0) -> StreamState:
        state = self.tracker.open(name, slot=5, text_chars=12, tokens=4, at=at)
        self.tracker.text_sent(state, at)
        return state

    def chunk(
        self, name: str, seq: int, offset: int, at: float, samples: int = 1000, rate: int = RATE
    ) -> None:
        assert self.tracker.receive(Chunk(name, seq, offset, rate, b"\0\0" * samples), at) is None

    def done(
        self, name: str, at: float, chunks: int, samples: int, reason: str = "complete"
    ) -> StreamState | None:
        return self.tracker.receive(Done(name, reason, chunks, samples), at)


def test_a_well_behaved_stream_makes_a_clean_record():
    conn = Conn(jitter_s=0.05)
    state = conn.stream(at=1.0)
    conn.chunk("s", 0, 0, at=1.2)
    conn.chunk("s", 1, 1000, at=1.25)
    conn.chunk("s", 2, 2000, at=1.4, samples=500)
    assert conn.done("s", at=1.5, chunks=3, samples=2500) is state
    assert state.finished
    record = conn.tracker.close(state)

    assert record.outcome == Outcome.COMPLETE
    assert (record.stream, record.slot, record.connection, record.tokens) == ("s", 5, 3, 4)
    assert record.first_audio_ms == pytest.approx(200.0)
    assert record.gaps_ms == pytest.approx([50.0, 150.0])
    assert (record.chunks, record.samples, record.sample_rate) == (3, 2500, RATE)
    # Start 1.25: chunk 1 needed at 1.35, chunk 2 at 1.45 (arrived 1.4): no underrun.
    assert (record.underruns, record.stall_ms) == (0, 0.0)
    assert record.violations == [] and record.errors == []
    assert not conn.violations and not conn.errors
    assert conn.tracker.active == 0


def test_a_skipped_seq_is_one_violation_not_one_per_later_chunk():
    conn = Conn()
    state = conn.stream()
    conn.chunk("s", 0, 0, at=0.1)
    conn.chunk("s", 2, 1000, at=0.2)
    conn.chunk("s", 3, 2000, at=0.3)
    conn.done("s", at=0.4, chunks=3, samples=3000)
    assert conn.tracker.close(state).violations == ["seq_gap"]
    assert conn.violations == Counter({"seq_gap": 1})


def test_a_first_seq_other_than_zero_is_a_gap():
    conn = Conn()
    conn.stream()
    conn.chunk("s", 1, 0, at=0.1)
    assert conn.violations == Counter({"seq_gap": 1})


def test_offsets_must_be_contiguous_and_start_at_zero():
    conn = Conn()
    conn.stream()
    conn.chunk("s", 0, 10, at=0.1)  # first offset not 0
    conn.chunk("s", 1, 1010, at=0.2)  # contiguous with the previous one
    conn.chunk("s", 2, 2005, at=0.3)  # overlaps the previous chunk
    assert conn.violations == Counter({"offset_gap": 2})


def test_the_sample_rate_may_not_change_within_a_stream():
    conn = Conn()
    conn.stream()
    conn.chunk("s", 0, 0, at=0.1)
    conn.chunk("s", 1, 1000, at=0.2, rate=16000)
    assert conn.violations == Counter({"sample_rate_changed": 1})


def test_done_counts_must_match_what_arrived():
    conn = Conn()
    state = conn.stream()
    conn.chunk("s", 0, 0, at=0.1)
    conn.done("s", at=0.2, chunks=2, samples=1500)
    assert conn.tracker.close(state).violations == ["done_chunks_mismatch", "done_samples_mismatch"]


def test_chunks_and_dones_after_done_are_violations_before_and_after_the_stream_is_closed():
    conn = Conn()
    state = conn.stream()
    conn.done("s", at=0.1, chunks=0, samples=0)
    conn.chunk("s", 0, 0, at=0.2)
    assert conn.done("s", at=0.3, chunks=0, samples=0) is None
    record = conn.tracker.close(state)
    conn.chunk("s", 0, 0, at=0.4)
    conn.done("s", at=0.5, chunks=0, samples=0)
    assert record.violations == ["chunk_after_done", "duplicate_done"]
    assert record.chunks == 0
    assert conn.violations == Counter({"chunk_after_done": 2, "duplicate_done": 2})


def test_frames_for_streams_never_started_are_violations():
    conn = Conn()
    conn.chunk("ghost", 0, 0, at=0.1)
    assert conn.done("ghost", at=0.2, chunks=0, samples=0) is None
    assert conn.violations == Counter({"unknown_stream": 2})


def test_chunks_between_cancel_and_done_are_fine_but_not_played():
    conn = Conn(jitter_s=0.0)
    state = conn.stream(at=0.0)
    conn.chunk("s", 0, 0, at=0.1)
    conn.tracker.cancel_sent(state, 0.15)
    assert state.input_over
    conn.chunk("s", 1, 1000, at=0.5)  # late, but the listener barged in: no underrun
    conn.done("s", at=0.52, chunks=2, samples=2000, reason="cancelled")
    record = conn.tracker.close(state)
    assert record.outcome == Outcome.CANCELLED
    assert record.cancelled_by_client
    assert record.cancel_to_done_ms == pytest.approx(370.0)
    assert (record.chunks, record.samples, record.gaps_ms, record.underruns) == (2, 2000, [], 0)
    assert not conn.violations


def test_cancelled_without_a_cancel_is_a_violation():
    conn = Conn()
    state = conn.stream()
    conn.done("s", at=0.1, chunks=0, samples=0, reason="cancelled")
    assert conn.tracker.close(state).violations == ["unexpected_cancelled"]


def test_late_chunks_are_underruns_on_the_record():
    conn = Conn(jitter_s=0.1)
    state = conn.stream()
    for seq, at in enumerate([0.0, 0.25, 0.3]):  # start 0.1; chunk 1 needed at 0.2: 50 ms late
        conn.chunk("s", seq, seq * 1000, at=at)
    conn.done("s", at=0.35, chunks=3, samples=3000)
    record = conn.tracker.close(state)
    assert (record.underruns, record.stall_ms) == (1, pytest.approx(150.0))


def test_underruns_are_told_apart_by_when_their_words_text_was_sent():
    conn = Conn(jitter_s=0.1)
    state = conn.tracker.open("s", slot=0, text_chars=9, tokens=3, at=0.0, text="Hi there.")
    conn.tracker.text_sent(state, 0.0, 3)  # "Hi "
    conn.tracker.text_sent(state, 0.05, 3)  # "the"
    conn.tracker.text_sent(state, 0.9, 3)  # "re.": "there" is whole only at 0.9
    words = (("Hi", 0, 900), ("there", 1000, 2500))
    for seq, (at, timed) in enumerate([(0.0, words[:1]), (1.0, words[1:]), (1.05, ())]):
        chunk = Chunk("s", seq, seq * 1000, RATE, b"\0\0" * 1000, words=timed or None)
        conn.tracker.receive(chunk, at)
    conn.done("s", at=1.1, chunks=3, samples=3000)
    record = conn.tracker.close(state)
    # Start 0.1; chunk 1 ("there") was needed at 0.2 and arrived at 1.0; its text was complete at 0.9.
    assert (record.underruns, record.underruns_text, record.underruns_server) == (1, 1, 0)
    assert [(sent.at, sent.chars) for sent in state.sent] == [(0.0, 3), (0.05, 6), (0.9, 9)]


def test_an_underrun_without_word_timings_has_no_known_cause():
    conn = Conn(jitter_s=0.1)
    state = conn.stream()
    for seq, at in enumerate([0.0, 0.25, 0.3]):
        conn.chunk("s", seq, seq * 1000, at=at)
    conn.done("s", at=0.35, chunks=3, samples=3000)
    record = conn.tracker.close(state)
    assert (record.underruns, record.underruns_unknown, record.underruns_text) == (1, 1, 0)


def test_an_error_for_a_stream_wakes_it_and_a_refused_start_ends_as_error():
    conn = Conn()
    state = conn.stream()
    assert conn.tracker.receive(Error(ErrorCode.OVERLOADED, "busy", "s"), 0.2) is state
    assert state.error_at == 0.2 and state.input_over and not state.finished
    record = conn.tracker.close(state)  # given up after the settle time: no done came
    assert record.outcome == Outcome.ERROR
    assert record.errors == ["overloaded"]
    assert conn.errors == Counter({"overloaded": 1})
    conn.done("s", at=2.0, chunks=0, samples=0)
    assert conn.violations == Counter({"late_after_error": 1})


def test_an_error_then_done_error_is_one_errored_stream():
    conn = Conn()
    state = conn.stream()
    conn.tracker.receive(Error(ErrorCode.TEXT_TOO_LONG, "too long", "s"), 0.1)
    conn.done("s", at=0.15, chunks=0, samples=0, reason="error")
    record = conn.tracker.close(state)
    assert (record.outcome, record.errors) == (Outcome.ERROR, ["text_too_long"])
    assert not conn.violations


def test_errors_without_an_open_stream_are_counted_only():
    conn = Conn()
    assert conn.tracker.receive(Error(ErrorCode.BAD_FRAME, "bad"), 0.1) is None
    assert conn.tracker.receive(Error(ErrorCode.UNKNOWN_STREAM, "who?", "gone"), 0.2) is None
    assert conn.errors == Counter({"bad_frame": 1, "unknown_stream": 1})
    assert not conn.violations


def test_hello_must_come_first_and_once():
    errors, violations = Counter(), Counter()
    tracker = ConnectionTracker(0, jitter_s=0.0, errors=errors, violations=violations)
    tracker.receive(Error(ErrorCode.INTERNAL, "oops"), 0.0)
    tracker.receive(HELLO, 0.1)
    tracker.receive(HELLO, 0.2)
    assert tracker.hello == HELLO
    assert violations == Counter({"hello_not_first": 1, "duplicate_hello": 1})


def test_undecodable_messages_are_violations_on_their_stream_when_named():
    conn = Conn()
    state = conn.stream()
    conn.tracker.undecodable(ProtocolError(ErrorCode.INVALID_FIELD, "audio is odd", "s"))
    conn.tracker.undecodable(ProtocolError(ErrorCode.BAD_FRAME, "not msgpack"))
    assert state.violations == ["undecodable_frame"]
    assert conn.violations == Counter({"undecodable_frame": 2})


def test_losing_the_connection_ends_open_streams_and_counts_missing_done_when_the_server_closed():
    conn = Conn()
    finished, open_one = conn.stream("a"), conn.stream("b")
    conn.done("a", at=0.1, chunks=0, samples=0)
    assert conn.tracker.lose_all(server_closed=True) == [open_one]
    assert open_one.finished and open_one.lost and not finished.lost
    assert conn.violations == Counter({"missing_done": 1})
    assert conn.tracker.close(open_one).outcome == Outcome.UNFINISHED

    client_side = Conn()
    state = client_side.stream()
    assert client_side.tracker.lose_all(server_closed=False) == [state]
    assert not client_side.violations


def test_giving_up_is_counted_as_a_client_error():
    conn = Conn()
    state = conn.stream()
    record = conn.tracker.close(state, give_up="client:stream_timeout")
    assert (record.outcome, record.errors) == (Outcome.UNFINISHED, ["client:stream_timeout"])
    assert conn.errors == Counter({"client:stream_timeout": 1})


def test_stream_ids_may_not_be_reused_on_a_connection():
    conn = Conn()
    conn.tracker.close(conn.stream("x"))
    with pytest.raises(ValueError, match="already used"):
        conn.stream("x")


# Drains: what protocol v1 lets a server do when it shuts down is a retry, not a violation


def test_a_start_unanswered_at_a_1001_after_draining_is_retried_not_missing():
    conn = Conn()
    served, unread = conn.stream("a"), conn.stream("b")
    conn.chunk("a", 0, 0, at=0.1)
    assert conn.tracker.receive(Draining(grace_ms=10000), 0.2) is None
    assert conn.tracker.draining_at == 0.2
    conn.done("a", at=0.3, chunks=1, samples=1000)
    assert conn.tracker.lose_all(server_closed=True, close_code=1001) == [unread]
    assert not conn.violations
    assert conn.tracker.close(served).outcome == Outcome.COMPLETE
    assert conn.tracker.close(unread).outcome == Outcome.RETRIED


def test_a_stream_with_audio_and_no_done_at_a_drain_close_is_still_missing_done():
    conn = Conn()
    state = conn.stream()
    conn.chunk("s", 0, 0, at=0.1)
    conn.tracker.receive(Draining(), 0.2)
    conn.tracker.lose_all(server_closed=True, close_code=1001)
    assert conn.violations == Counter({"missing_done": 1})
    assert conn.tracker.close(state).outcome == Outcome.UNFINISHED


def test_an_unanswered_start_is_missing_done_without_the_notice_or_on_another_close_code():
    for notice, code in ((False, 1001), (True, 1006)):
        conn = Conn()
        state = conn.stream()
        if notice:
            conn.tracker.receive(Draining(), 0.1)
        conn.tracker.lose_all(server_closed=True, close_code=code)
        assert conn.violations == Counter({"missing_done": 1}), (notice, code)
        assert conn.tracker.close(state).outcome == Outcome.UNFINISHED


def test_a_start_refused_with_shutting_down_is_retried():
    conn = Conn()
    state = conn.stream()
    assert conn.tracker.receive(Error(ErrorCode.SHUTTING_DOWN, "draining", "s"), 0.1) is state
    assert state.retry
    conn.tracker.lose_all(server_closed=True, close_code=1001)
    assert not conn.violations
    record = conn.tracker.close(state)
    assert (record.outcome, record.errors) == (Outcome.RETRIED, ["shutting_down"])


def test_a_frame_type_this_client_does_not_know_is_ignored():
    conn = Conn()
    conn.tracker.undecodable(ProtocolError(ErrorCode.UNKNOWN_TYPE, "unknown server frame type 'later'"))
    assert not conn.violations
    assert conn.errors == Counter({"client:unknown_frame_type": 1})
