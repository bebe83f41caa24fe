"""protocol.streams: the per-connection stream table and its state machine."""

from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from voxwire.protocol import ErrorCode, ProtocolError, Start, StreamPhase, StreamTable, Text


def refused(code: ErrorCode, action: Callable[..., object], *args: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        action(*args)
    assert caught.value.code is code
    return caught.value


def test_a_stream_goes_open_ended_input_done() -> None:
    table: StreamTable[str] = StreamTable(max_streams=2, max_text_bytes=100)
    assert table.phase("a1") is None
    assert table.open(Start("a1"), lambda: "session a1") == "session a1"
    assert table.owner("a1") == "session a1" and table.owners() == ["session a1"]
    assert table.phase("a1") is StreamPhase.OPEN
    assert table.accept_text(Text("a1", "Hello there, ")) == "session a1"
    table.accept_text(Text("a1", "now", flush=True))
    assert table.phase("a1") is StreamPhase.OPEN
    table.accept_text(Text("a1", "how are you?", final=True))
    assert table.phase("a1") is StreamPhase.ENDED_INPUT
    assert table.active == ["a1"]
    assert len(table) == 1
    table.finish("a1")
    assert table.phase("a1") is StreamPhase.DONE
    assert table.active == []
    assert len(table) == 0


def test_the_server_may_finish_an_open_stream() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    table.finish("a1")
    assert table.phase("a1") is StreamPhase.DONE


@pytest.mark.parametrize("final", [False, True])
def test_start_of_an_active_id_is_stream_exists(final: bool) -> None:
    table = StreamTable(max_streams=4, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    table.accept_text(Text("a1", "hi", final=final))
    error = refused(ErrorCode.STREAM_EXISTS, table.open, Start("a1", voice="joe"), lambda: "new")
    assert error.stream == "a1"
    assert "'a1'" in error.message
    assert ("ended_input" if final else "open") in error.message
    assert table.active == ["a1"]


def test_too_many_streams_until_one_finishes() -> None:
    table = StreamTable(max_streams=2, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    table.open(Start("a2"), lambda: "a2")
    error = refused(ErrorCode.TOO_MANY_STREAMS, table.open, Start("a3"), lambda: "a3")
    assert error.stream == "a3"
    assert "max_streams" in error.message
    assert table.phase("a3") is None
    table.finish("a1")
    table.open(Start("a3"), lambda: "a3")
    assert table.active == ["a2", "a3"]


def test_a_stream_in_ended_input_still_counts_against_the_limit() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    table.accept_text(Text("a1", "bye", final=True))
    refused(ErrorCode.TOO_MANY_STREAMS, table.open, Start("a2"), lambda: "a2")


def test_text_for_a_never_started_id_is_unknown_stream_and_a_cancel_is_ignored() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    error = refused(ErrorCode.UNKNOWN_STREAM, table.accept_text, Text("zz", "hi"))
    assert "'zz'" in error.message
    assert "start" in error.message
    refused(ErrorCode.UNKNOWN_STREAM, table.accept_text, Text("zz", "hi", final=True))
    assert table.cancel("zz") is None
    assert table.phase("zz") is None


def test_text_after_final_is_stream_closed() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    table.accept_text(Text("a1", "bye", final=True))
    error = refused(ErrorCode.STREAM_CLOSED, table.accept_text, Text("a1", "more"))
    assert "'a1'" in error.message
    assert "ended_input" in error.message
    refused(ErrorCode.STREAM_CLOSED, table.accept_text, Text("a1", "", final=True))


def test_text_after_cancel_or_done_is_stream_closed() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    assert table.cancel("a1") == "a1"
    refused(ErrorCode.STREAM_CLOSED, table.accept_text, Text("a1", "more"))
    table.finish("a1")
    error = refused(ErrorCode.STREAM_CLOSED, table.accept_text, Text("a1", "more"))
    assert "done" in error.message


def test_text_too_long_counts_utf8_bytes_of_all_the_streams_text() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=10)
    table.open(Start("a1"), lambda: "a1")
    table.accept_text(Text("a1", "ééé"))  # 6 bytes
    error = refused(ErrorCode.TEXT_TOO_LONG, table.accept_text, Text("a1", "ééé", final=True))
    assert "12" in error.message
    assert "max_text_bytes" in error.message
    assert error.stream == "a1"
    assert table.phase("a1") is StreamPhase.OPEN  # a refused text changes nothing
    table.accept_text(Text("a1", "éé", final=True))  # 10 bytes: at the limit
    assert table.phase("a1") is StreamPhase.ENDED_INPUT


def test_a_reused_id_starts_with_no_text_counted() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=4)
    table.open(Start("a1"), lambda: "a1")
    table.accept_text(Text("a1", "abcd", final=True))
    table.finish("a1")
    table.open(Start("a1"), lambda: "a1")
    assert table.phase("a1") is StreamPhase.OPEN
    table.accept_text(Text("a1", "abcd"))
    assert table.cancel("a1") == "a1"


def test_cancel_is_answered_once_and_ignored_after() -> None:
    table = StreamTable(max_streams=2, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    assert table.cancel("a1") == "a1"
    assert table.phase("a1") is StreamPhase.ENDED_INPUT
    assert table.cancel("a1") is None  # its done is already on its way
    table.finish("a1")
    assert table.cancel("a1") is None  # races with done in barge-in: ignored
    assert table.phase("a1") is StreamPhase.DONE


def test_cancel_stops_a_stream_that_is_speaking_its_final_text() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    table.accept_text(Text("a1", "bye", final=True))
    assert table.cancel("a1") == "a1"
    assert table.cancel("a1") is None


def test_finishing_a_stream_that_is_not_active_is_internal() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    error = refused(ErrorCode.INTERNAL, table.finish, "a1")
    assert "unknown" in error.message
    table.open(Start("a1"), lambda: "a1")
    table.finish("a1")
    error = refused(ErrorCode.INTERNAL, table.finish, "a1")
    assert "'a1'" in error.message
    assert "done" in error.message


def test_ended_ids_are_forgotten_oldest_first() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100, remember=3)
    for index in range(5):
        table.open(Start(f"s{index}"), lambda index=index: f"s{index}")
        table.finish(f"s{index}")
    assert [table.phase(f"s{index}") for index in range(5)] == [None, None, *[StreamPhase.DONE] * 3]
    assert table.cancel("s0") is None  # forgotten: a cancel is still ignored, silently
    assert table.cancel("s2") is None


def test_restarting_an_ended_id_takes_it_out_of_the_ended_memory() -> None:
    table = StreamTable(max_streams=2, max_text_bytes=100, remember=2)
    for stream in ("a", "b"):
        table.open(Start(stream), lambda stream=stream: stream)
        table.finish(stream)
    table.open(Start("a"), lambda: "a")  # "a" is active again, so only "b" is remembered as ended
    table.open(Start("c"), lambda: "c")
    table.finish("c")
    assert table.phase("b") is StreamPhase.DONE
    assert table.phase("a") is StreamPhase.OPEN


def test_remembering_no_ended_ids_makes_them_unknown_at_once() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100, remember=0)
    table.open(Start("a1"), lambda: "a1")
    table.finish("a1")
    assert table.phase("a1") is None
    assert table.cancel("a1") is None


@pytest.mark.parametrize(("max_streams", "max_text_bytes", "remember"), [(0, 1, 0), (1, 0, 0), (1, 1, -1)])
def test_the_table_refuses_a_bad_configuration(max_streams: int, max_text_bytes: int, remember: int) -> None:
    with pytest.raises(ValueError, match="StreamTable"):
        StreamTable(max_streams, max_text_bytes, remember)


def test_text_and_cancel_behind_a_refused_start_are_ignored_until_a_start_succeeds() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    table.refuse("a1")
    assert table.phase("a1") is StreamPhase.REFUSED
    assert table.accept_text(Text("a1", "hi")) is None
    assert table.accept_text(Text("a1", "bye", final=True)) is None
    assert table.cancel("a1") is None
    assert table.phase("a1") is StreamPhase.REFUSED
    table.open(Start("a1"), lambda: "a1")
    assert table.phase("a1") is StreamPhase.OPEN
    assert table.accept_text(Text("a1", "hi")) == "a1"
    table.finish("a1")
    table.refuse("a1")  # an ended id can be refused too (a start after done, refused)
    assert table.phase("a1") is StreamPhase.REFUSED


def test_a_start_that_begin_refuses_changes_nothing() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)

    def overloaded() -> str:
        raise ProtocolError(ErrorCode.OVERLOADED, "full", "a1")

    refused(ErrorCode.OVERLOADED, table.open, Start("a1"), overloaded)
    assert table.phase("a1") is None and len(table) == 0


def test_an_active_stream_cannot_be_refused() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100)
    table.open(Start("a1"), lambda: "a1")
    error = refused(ErrorCode.INTERNAL, table.refuse, "a1")
    assert "finish it first" in error.message
    assert table.phase("a1") is StreamPhase.OPEN


def test_ended_and_refused_ids_share_one_bounded_memory() -> None:
    table = StreamTable(max_streams=1, max_text_bytes=100, remember=2)
    table.open(Start("a"), lambda: "a")
    table.finish("a")
    table.refuse("b")
    table.refuse("c")
    assert [table.phase(s) for s in "abc"] == [None, StreamPhase.REFUSED, StreamPhase.REFUSED]
    refused(ErrorCode.INTERNAL, table.finish, "b")


MAX_STREAMS = 3
MAX_TEXT_BYTES = 12
REMEMBER = 4
STREAM_IDS = [f"s{index}" for index in range(8)]
IDS = st.sampled_from(STREAM_IDS)


class StreamTableMachine(RuleBasedStateMachine):
    """Drives a StreamTable at random and checks it against a plain model of the rules."""

    def __init__(self) -> None:
        super().__init__()
        self.table: StreamTable[str] = StreamTable(MAX_STREAMS, MAX_TEXT_BYTES, REMEMBER)
        self.open_ids: dict[str, int] = {}  # OPEN: UTF-8 bytes of text taken so far
        self.ended_input: set[str] = set()
        self.cancelled: set[str] = set()
        self.inactive: list[tuple[str, StreamPhase]] = []  # ended or refused, oldest first, at most REMEMBER

    def active(self) -> set[str]:
        return set(self.open_ids) | self.ended_input

    def inactive_phase(self, stream: str) -> StreamPhase | None:
        return dict(self.inactive).get(stream)

    def remember(self, stream: str, phase: StreamPhase) -> None:
        self.inactive = [entry for entry in self.inactive if entry[0] != stream]
        self.inactive = [*self.inactive, (stream, phase)][-REMEMBER:]

    def expect(self, code: ErrorCode | None, action: Callable[..., object], *args: object) -> object:
        """What ``action(*args)`` returns when ``code`` is None, else check that it raises ``code``."""
        if code is None:
            return action(*args)
        refused(code, action, *args)
        return None

    @rule(stream=IDS)
    def start(self, stream: str) -> None:
        if stream in self.active():
            code: ErrorCode | None = ErrorCode.STREAM_EXISTS
        elif len(self.active()) >= MAX_STREAMS:
            code = ErrorCode.TOO_MANY_STREAMS
        else:
            code = None
        assert self.expect(code, self.table.open, Start(stream), lambda: stream) == (
            stream if code is None else None
        )
        if code is None:
            self.open_ids[stream] = 0
            self.cancelled.discard(stream)
            self.inactive = [entry for entry in self.inactive if entry[0] != stream]

    @rule(stream=IDS)
    def refuse(self, stream: str) -> None:
        if stream in self.active():
            self.expect(ErrorCode.INTERNAL, self.table.refuse, stream)
        else:
            self.table.refuse(stream)
            self.remember(stream, StreamPhase.REFUSED)

    @rule(stream=IDS, text=st.text(max_size=6), final=st.booleans())
    def text(self, stream: str, text: str, final: bool) -> None:
        size = len(text.encode())
        phase = self.inactive_phase(stream)
        if stream in self.open_ids:
            too_long = self.open_ids[stream] + size > MAX_TEXT_BYTES
            code = ErrorCode.TEXT_TOO_LONG if too_long else None
        elif stream in self.ended_input or phase is StreamPhase.DONE:
            code = ErrorCode.STREAM_CLOSED
        elif phase is StreamPhase.REFUSED:
            code = None
        else:
            code = ErrorCode.UNKNOWN_STREAM
        result = self.expect(code, self.table.accept_text, Text(stream, text, final=final))
        if code is None and stream in self.open_ids:
            assert result == stream
            self.open_ids[stream] += size
            if final:
                del self.open_ids[stream]
                self.ended_input.add(stream)
        else:
            assert result is None

    @rule(stream=IDS)
    def cancel(self, stream: str) -> None:
        result = self.table.cancel(stream)  # never an error: a cancel of an unknown id is ignored too
        must_cancel = stream in self.active() and stream not in self.cancelled
        assert result == (stream if must_cancel else None)
        if must_cancel:
            self.open_ids.pop(stream, None)
            self.ended_input.add(stream)
            self.cancelled.add(stream)

    @precondition(lambda self: self.active())
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        stream = data.draw(st.sampled_from(sorted(self.active())))
        self.table.finish(stream)
        self.open_ids.pop(stream, None)
        self.ended_input.discard(stream)
        self.remember(stream, StreamPhase.DONE)
        assert self.table.cancel(stream) is None  # cancel after done is ignored

    @rule(stream=IDS)
    def finish_refused(self, stream: str) -> None:
        if stream not in self.active():
            self.expect(ErrorCode.INTERNAL, self.table.finish, stream)

    @invariant()
    def phases_match_the_model(self) -> None:
        for stream in STREAM_IDS:
            if stream in self.open_ids:
                expected: StreamPhase | None = StreamPhase.OPEN
            elif stream in self.ended_input:
                expected = StreamPhase.ENDED_INPUT
            else:
                expected = self.inactive_phase(stream)
            assert self.table.phase(stream) is expected, stream

    @invariant()
    def limits_hold(self) -> None:
        assert len(self.table) <= MAX_STREAMS
        assert sorted(self.table.active) == sorted(self.active())
        remembered = [s for s in STREAM_IDS if self.table.phase(s) in (StreamPhase.DONE, StreamPhase.REFUSED)]
        assert len(remembered) <= REMEMBER


StreamTableMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_stream_table_state_machine = StreamTableMachine.TestCase
