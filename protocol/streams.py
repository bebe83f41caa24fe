"""The streams of one connection, as a small explicit state machine.

Each stream id moves through::

    (unknown) --start--> OPEN --text(final) or cancel--> ENDED_INPUT --finish--> DONE --start--> OPEN ...
                         OPEN --finish--> DONE   (the server ends a stream early: error, shutdown)
    (unknown), DONE or REFUSED --refuse--> REFUSED --start--> OPEN

``OPEN`` accepts text; ``ENDED_INPUT`` has all its text (``final`` came, or ``cancel``) and may still be
speaking; ``DONE`` means its ``done`` frame was sent; ``REFUSED`` means its last ``start`` was refused, and
the ``text`` and ``cancel`` frames the client pipelined behind it are ignored. Every legal move is in
``_MOVES`` and every refused one, with its error code, in ``_REFUSALS``; a refused move raises
``ProtocolError`` naming the stream and its phase and changes nothing, so the caller decides what follows
(the spec ends an active stream that an error is tied to with ``done`` reason ``error``, through ``finish``).

An active stream carries one value of the caller's (``S``, the server's stream session), made by the
``begin`` callback of :meth:`StreamTable.open`, so that the caller keeps no second map of stream ids.

Memory is bounded: at most ``max_streams`` active streams, and the ids of at most ``remember`` inactive
streams (ended or refused), oldest forgotten first, kept so that a ``cancel`` racing with ``done`` is ignored
(spec guarantee 3) and text behind a refused ``start`` is ignored. A forgotten id is unknown again.
"""

import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ErrorCode, ProtocolError
from .frames import Start, Text

S = TypeVar("S")


class StreamPhase(enum.StrEnum):
    OPEN = "open"
    """Started, accepting text."""
    ENDED_INPUT = "ended_input"
    """All text received (``final`` or ``cancel``); still speaking until ``finish``."""
    DONE = "done"
    """Ended and its ``done`` sent; the id may start a new stream."""
    REFUSED = "refused"
    """Its last ``start`` was refused; text and cancels for it are ignored until a ``start`` succeeds."""


class _Event(enum.Enum):
    START = "start"
    TEXT = "text"
    FINAL_TEXT = "final text"
    CANCEL = "cancel"
    FINISH = "finish"
    REFUSE = "refuse"


_UNKNOWN = None  # the phase of an id this table does not know (never started, or forgotten)
_OPEN, _ENDED_INPUT = StreamPhase.OPEN, StreamPhase.ENDED_INPUT
_DONE, _REFUSED = StreamPhase.DONE, StreamPhase.REFUSED

_MOVES: dict[tuple[StreamPhase | None, _Event], StreamPhase] = {
    (_UNKNOWN, _Event.START): _OPEN,
    (_DONE, _Event.START): _OPEN,
    (_REFUSED, _Event.START): _OPEN,
    (_OPEN, _Event.TEXT): _OPEN,
    (_OPEN, _Event.FINAL_TEXT): _ENDED_INPUT,
    (_REFUSED, _Event.TEXT): _REFUSED,
    (_REFUSED, _Event.FINAL_TEXT): _REFUSED,
    (_OPEN, _Event.CANCEL): _ENDED_INPUT,
    (_ENDED_INPUT, _Event.CANCEL): _ENDED_INPUT,
    (_DONE, _Event.CANCEL): _DONE,
    (_REFUSED, _Event.CANCEL): _REFUSED,
    (_OPEN, _Event.FINISH): _DONE,
    (_ENDED_INPUT, _Event.FINISH): _DONE,
    (_UNKNOWN, _Event.REFUSE): _REFUSED,
    (_DONE, _Event.REFUSE): _REFUSED,
    (_REFUSED, _Event.REFUSE): _REFUSED,
}

_STILL_ACTIVE = "it is still active; wait for its done before using the id again"
_NOT_STARTED = "no stream has this id on this connection; send start first"
_INPUT_ENDED = "its input has ended (final text or cancel received); start a new stream for more text"
_OVER = "it is over; start it again to send more text"
_NOT_ACTIVE = "only an active stream can finish; the server ended it twice or never started it"
_ACTIVE = "an active stream cannot be refused; the server must finish it first"

_REFUSALS: dict[tuple[StreamPhase | None, _Event], tuple[ErrorCode, str]] = {
    (_OPEN, _Event.START): (ErrorCode.STREAM_EXISTS, _STILL_ACTIVE),
    (_ENDED_INPUT, _Event.START): (ErrorCode.STREAM_EXISTS, _STILL_ACTIVE),
    (_UNKNOWN, _Event.TEXT): (ErrorCode.UNKNOWN_STREAM, _NOT_STARTED),
    (_UNKNOWN, _Event.FINAL_TEXT): (ErrorCode.UNKNOWN_STREAM, _NOT_STARTED),
    (_ENDED_INPUT, _Event.TEXT): (ErrorCode.STREAM_CLOSED, _INPUT_ENDED),
    (_ENDED_INPUT, _Event.FINAL_TEXT): (ErrorCode.STREAM_CLOSED, _INPUT_ENDED),
    (_DONE, _Event.TEXT): (ErrorCode.STREAM_CLOSED, _OVER),
    (_DONE, _Event.FINAL_TEXT): (ErrorCode.STREAM_CLOSED, _OVER),
    (_UNKNOWN, _Event.FINISH): (ErrorCode.INTERNAL, _NOT_ACTIVE),
    (_DONE, _Event.FINISH): (ErrorCode.INTERNAL, _NOT_ACTIVE),
    (_REFUSED, _Event.FINISH): (ErrorCode.INTERNAL, _NOT_ACTIVE),
    (_OPEN, _Event.REFUSE): (ErrorCode.INTERNAL, _ACTIVE),
    (_ENDED_INPUT, _Event.REFUSE): (ErrorCode.INTERNAL, _ACTIVE),
}


@dataclass(slots=True)
class _Active(Generic[S]):
    phase: StreamPhase
    owner: S
    text_bytes: int = 0
    cancelled: bool = False


class StreamTable(Generic[S]):
    """The streams of one connection: which ids are active, in which phase, and what they may do next."""

    def __init__(self, max_streams: int, max_text_bytes: int, remember: int = 1024) -> None:
        if max_streams < 1 or max_text_bytes < 1 or remember < 0:
            raise ValueError(
                "StreamTable needs max_streams >= 1, max_text_bytes >= 1 and remember >= 0, got "
                f"{max_streams}, {max_text_bytes} and {remember}"
            )
        self.max_streams = max_streams
        self.max_text_bytes = max_text_bytes
        self.remember = remember
        self._active: dict[str, _Active[S]] = {}
        self._inactive: OrderedDict[str, StreamPhase] = OrderedDict()
        """Ended and refused ids, most recent last."""

    def open(self, start: Start, begin: Callable[[], S]) -> S:
        """Start a stream with the value ``begin()`` makes for it, and return that value.

        ``stream_exists`` while the id is active, ``too_many_streams`` at the cap; ``begin`` may refuse the
        start too, by raising ``ProtocolError``. A refused start changes nothing here: the caller ends an
        active stream the refusal is tied to, then calls :meth:`refuse`."""
        stream = start.stream
        self._move(stream, _Event.START)
        if len(self._active) >= self.max_streams:
            raise ProtocolError(
                ErrorCode.TOO_MANY_STREAMS,
                f"start refused for stream {stream!r}: this connection already has {len(self._active)} "
                "active streams, its limit (max_streams); wait for a done before starting another",
                stream,
            )
        owner = begin()
        self._inactive.pop(stream, None)
        self._active[stream] = _Active(_OPEN, owner)
        return owner

    def refuse(self, stream: str) -> None:
        """Record that ``stream``'s ``start`` was refused: its text and cancels are ignored from now on."""
        self._move(stream, _Event.REFUSE)
        self._forget_later(stream, _REFUSED)

    def accept_text(self, text: Text) -> S | None:
        """Take ``text``: the value of the stream to give it to, or None to ignore it (a refused id).
        ``final`` ends the stream's input.

        Refused with ``unknown_stream`` for an id never started, ``stream_closed`` once the input has ended,
        and ``text_too_long`` when the stream's text would pass ``max_text_bytes`` UTF-8 bytes in all.
        """
        stream = text.stream
        phase = self._move(stream, _Event.FINAL_TEXT if text.final else _Event.TEXT)
        record = self._active.get(stream)
        if record is None:
            return None
        text_bytes = record.text_bytes + len(text.text.encode("utf-8"))  # a Text is valid Unicode
        if text_bytes > self.max_text_bytes:
            raise ProtocolError(
                ErrorCode.TEXT_TOO_LONG,
                f"text refused for stream {stream!r}: its text would be {text_bytes} UTF-8 bytes, over the "
                f"limit of {self.max_text_bytes} (max_text_bytes); send the rest in another stream",
                stream,
            )
        record.text_bytes = text_bytes
        record.phase = phase
        return record.owner

    def cancel(self, stream: str) -> S | None:
        """The value of the stream the caller must cancel now (answering ``done`` reason ``cancelled``).

        Once per active stream, which moves to ``ENDED_INPUT``. None, to be ignored silently, for any other
        id: one already cancelled, ended (spec guarantee 3, however long ago), refused, or never started.
        A cancel races with the end of its stream in barge-in, and the client needs no answer to it then.
        """
        if self.phase(stream) is _UNKNOWN:
            return None
        phase = self._move(stream, _Event.CANCEL)
        record = self._active.get(stream)
        if record is None or record.cancelled:
            return None
        record.cancelled = True
        record.phase = phase
        return record.owner

    def finish(self, stream: str) -> None:
        """Record that ``stream``'s ``done`` is sent: it is no longer active and its id may start again."""
        self._move(stream, _Event.FINISH)
        del self._active[stream]
        self._forget_later(stream, _DONE)

    def phase(self, stream: str) -> StreamPhase | None:
        """The phase of ``stream``, or None for an id never started here or long forgotten."""
        record = self._active.get(stream)
        if record is not None:
            return record.phase
        return self._inactive.get(stream, _UNKNOWN)

    def owner(self, stream: str) -> S | None:
        """The value of an active stream, or None."""
        record = self._active.get(stream)
        return None if record is None else record.owner

    def owners(self) -> list[S]:
        """The values of the active streams, oldest first."""
        return [record.owner for record in self._active.values()]

    @property
    def active(self) -> list[str]:
        """The ids of the active (``OPEN`` or ``ENDED_INPUT``) streams, oldest first."""
        return list(self._active)

    def __len__(self) -> int:
        return len(self._active)

    def _forget_later(self, stream: str, phase: StreamPhase) -> None:
        self._inactive[stream] = phase
        self._inactive.move_to_end(stream)
        if len(self._inactive) > self.remember:
            self._inactive.popitem(last=False)

    def _move(self, stream: str, event: _Event) -> StreamPhase:
        """The phase ``event`` takes ``stream`` to, or ``ProtocolError`` if it is refused there."""
        phase = self.phase(stream)
        next_phase = _MOVES.get((phase, event))
        if next_phase is not None:
            return next_phase
        code, reason = _REFUSALS[phase, event]
        raise ProtocolError(
            code,
            f"{event.value} refused for stream {stream!r} (phase {phase or 'unknown'}): {reason}",
            stream,
        )
