"""The one error type of the wire protocol, and the codes it carries.

``protocol/`` raises a single exception for bad input, :class:`ProtocolError`. Its ``code`` is one of the
stable codes of protocol v1, sent to the client in an ``error`` frame; its ``message`` is a sentence a person
can act on; its ``stream`` names the stream the error is tied to, when that could be read::

    Exception
    └── ProtocolError(code: ErrorCode, message: str, stream: str | None)

Codes (``ErrorCode``), and who raises them:

- ``bad_frame``: not binary, not msgpack, trailing bytes, not a map, a key that is not a string, no string
  ``type`` (``codec``).
- ``unknown_type``: a ``type`` that is not a frame of this direction (``codec``).
- ``invalid_field``: a field missing, of the wrong type or out of range (``frames``, ``codec``).
- ``unknown_stream``: ``text`` or ``cancel`` for a stream id never started (``streams``).
- ``stream_exists``: ``start`` of a stream id that is still active (``streams``).
- ``stream_closed``: ``text`` after ``final``, after ``cancel``, or after the stream's ``done`` (``streams``).
- ``too_many_streams``: ``start`` beyond the connection's ``max_streams`` (``streams``).
- ``text_too_long``: a stream's text beyond ``max_text_bytes`` UTF-8 bytes in all (``streams``).
- ``internal``: the server broke the stream rules itself, such as finishing a stream twice (``streams``);
  also the server's code for its own failures.
- ``unknown_voice``, ``overloaded``, ``shutting_down``: raised by the server, never by ``protocol/``.
"""

import enum


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame; the values are fixed by protocol v1."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_STREAM = "unknown_stream"
    STREAM_EXISTS = "stream_exists"
    STREAM_CLOSED = "stream_closed"
    TOO_MANY_STREAMS = "too_many_streams"
    TEXT_TOO_LONG = "text_too_long"
    UNKNOWN_VOICE = "unknown_voice"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"
    SHUTTING_DOWN = "shutting_down"


class ProtocolError(Exception):
    """Bad input under protocol v1: the only exception ``protocol/`` raises for it.

    The server turns it into ``Error(code, message, stream)`` and keeps the connection open.
    """

    code: ErrorCode
    message: str
    stream: str | None

    def __init__(self, code: ErrorCode | str, message: str, stream: str | None = None) -> None:
        super().__init__(code, message, stream)
        self.code = ErrorCode(code)
        self.message = message
        self.stream = stream

    def __str__(self) -> str:
        where = f" (stream {self.stream!r})" if self.stream is not None else ""
        return f"{self.code}: {self.message}{where}"
