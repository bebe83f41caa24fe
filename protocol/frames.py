"""The frames of protocol v1 as frozen dataclasses that validate themselves when built.

A frame that exists is valid: building one with a bad field raises ``ProtocolError(INVALID_FIELD)`` naming
the field, with ``stream`` set once the frame's own stream id has passed its check. Sequences are stored as
tuples, so frames are hashable. Wire names (``type``) and msgpack live in ``codec``; this module knows no
bytes.
"""

import enum
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeAlias, TypeVar

from .checks import (
    check_bool,
    check_int,
    check_number,
    check_sample_rate,
    check_str,
    check_stream_id,
    invalid,
)
from .constants import MAX_SPEED, MIN_SPEED, PROTOCOL_VERSION
from .errors import ErrorCode


class DoneReason(enum.StrEnum):
    """Why a stream ended, in its ``done`` frame."""

    COMPLETE = "complete"
    CANCELLED = "cancelled"
    ERROR = "error"


_E = TypeVar("_E", bound=enum.StrEnum)


def _set(frame: object, name: str, value: Any) -> None:
    """Store a normalized field on a frozen frame (only from ``__post_init__``)."""
    object.__setattr__(frame, name, value)


def _as_tuple(name: str, value: Any, stream: str | None) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise invalid(name, "a list", value, stream)
    return tuple(value)


def _member(kind: type[_E], name: str, value: Any, stream: str | None) -> _E:
    """``value`` as a member of the string enum ``kind``, or ``INVALID_FIELD`` listing the allowed values."""
    for member in kind:
        if value == member:
            return member
    raise invalid(name, "one of " + ", ".join(kind), value, stream)


# Client to server


@dataclass(frozen=True, slots=True)
class Start:
    """Open a stream. Unset options take the server's defaults, announced in ``hello``."""

    stream: str
    voice: str | None = None
    sample_rate: int | None = None
    speed: float | None = None
    words: bool = False

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        if self.voice is not None:
            check_str("voice", self.voice, self.stream, non_empty=True)
        if self.sample_rate is not None:
            check_sample_rate("sample_rate", self.sample_rate, self.stream)
        if self.speed is not None:
            check_number("speed", self.speed, self.stream, MIN_SPEED, MAX_SPEED)
        check_bool("words", self.words, self.stream)


@dataclass(frozen=True, slots=True)
class Text:
    """Append text to a stream; ``final`` ends its input, ``flush`` speaks what is buffered now."""

    stream: str
    text: str
    final: bool = False
    flush: bool = False

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        check_str("text", self.text, self.stream)
        check_bool("final", self.final, self.stream)
        check_bool("flush", self.flush, self.stream)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop a stream now."""

    stream: str

    def __post_init__(self) -> None:
        check_stream_id(self.stream)


# Server to client


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """One voice the server offers, as listed in ``hello.voices``."""

    id: str
    language: str
    sample_rate: int

    def __post_init__(self) -> None:
        check_str("id", self.id, None, non_empty=True)
        check_str("language", self.language, None, non_empty=True)
        check_sample_rate("sample_rate", self.sample_rate, None)


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits, as announced in ``hello.limits``.

    The spec requires ``max_streams`` (per connection), ``max_text_bytes`` (UTF-8 bytes per stream) and
    ``max_frame_bytes`` (per incoming message). voxwire also announces ``max_connections`` (per server),
    ``max_buffered_audio_ms`` (audio waiting to be sent, per connection, before generation pauses),
    ``idle_timeout_ms`` (a connection with no active stream this long is closed), ``ping_interval_ms`` and
    ``ping_timeout_ms`` (the server pings this often, and closes a connection whose pong is this late);
    other servers may announce none of these.
    """

    max_streams: int
    max_text_bytes: int
    max_frame_bytes: int
    max_connections: int | None = None
    max_buffered_audio_ms: int | None = None
    idle_timeout_ms: int | None = None
    ping_interval_ms: int | None = None
    ping_timeout_ms: int | None = None

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if value is not None or limit.default is MISSING:
                check_int(limit.name, value, None, 1)


@dataclass(frozen=True, slots=True)
class Hello:
    """The server's first frame on every connection."""

    server: str
    voices: tuple[VoiceInfo, ...]
    sample_rates: tuple[int, ...]
    limits: Limits
    protocol: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        check_str("server", self.server, None, non_empty=True)
        voices = _as_tuple("voices", self.voices, None)
        for index, voice in enumerate(voices):
            if not isinstance(voice, VoiceInfo):
                raise invalid(f"voices[{index}]", "a VoiceInfo", voice, None)
        _set(self, "voices", voices)
        sample_rates = _as_tuple("sample_rates", self.sample_rates, None)
        for index, rate in enumerate(sample_rates):
            check_sample_rate(f"sample_rates[{index}]", rate, None)
        _set(self, "sample_rates", sample_rates)
        if not isinstance(self.limits, Limits):
            raise invalid("limits", "a Limits", self.limits, None)
        check_int("protocol", self.protocol, None, 1)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a stream's audio: PCM16 little-endian mono at ``sample_rate``.

    ``seq`` counts 0, 1, 2, ... per stream and ``offset`` is the stream sample index of the first sample.
    ``words``, sent only when the stream's ``start`` asked for them, holds ``(word, start, end)`` with start
    and end as sample offsets in the stream.
    """

    stream: str
    seq: int
    offset: int
    sample_rate: int
    audio: bytes = field(repr=False)
    words: tuple[tuple[str, int, int], ...] | None = None

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        check_int("seq", self.seq, self.stream, 0)
        check_int("offset", self.offset, self.stream, 0)
        check_sample_rate("sample_rate", self.sample_rate, self.stream)
        if not isinstance(self.audio, bytes) or len(self.audio) % 2:
            raise invalid("audio", "binary PCM16 data of an even number of bytes", self.audio, self.stream)
        if self.words is not None:
            _set(
                self,
                "words",
                tuple(
                    _word(index, entry, self.stream)
                    for index, entry in enumerate(_as_tuple("words", self.words, self.stream))
                ),
            )

    @property
    def samples(self) -> int:
        """How many samples ``audio`` holds (two bytes each)."""
        return len(self.audio) // 2


def _word(index: int, entry: Any, stream: str) -> tuple[str, int, int]:
    name = f"words[{index}]"
    if not isinstance(entry, list | tuple) or len(entry) != 3:
        raise invalid(name, "a list of [word, start, end]", entry, stream)
    word, start, end = entry
    check_str(f"{name}[0]", word, stream)
    check_int(f"{name}[1]", start, stream, 0)
    check_int(f"{name}[2]", end, stream, start)
    return (word, start, end)


@dataclass(frozen=True, slots=True)
class Done:
    """A stream is over; no chunk of it follows. ``chunks`` and ``samples`` count what was sent."""

    stream: str
    reason: DoneReason | str
    chunks: int
    samples: int
    ttfa_ms: float | None = None

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        _set(self, "reason", _member(DoneReason, "reason", self.reason, self.stream))
        check_int("chunks", self.chunks, self.stream, 0)
        check_int("samples", self.samples, self.stream, 0)
        if self.ttfa_ms is not None:
            check_number("ttfa_ms", self.ttfa_ms, self.stream, 0.0)


@dataclass(frozen=True, slots=True)
class Error:
    """Something the client sent or asked for was wrong, or the server failed."""

    code: ErrorCode
    message: str
    stream: str | None = None

    def __post_init__(self) -> None:
        if self.stream is not None:
            check_stream_id(self.stream)
        _set(self, "code", _member(ErrorCode, "code", self.code, self.stream))
        check_str("message", self.message, self.stream)


ClientFrame: TypeAlias = Start | Text | Cancel
ServerFrame: TypeAlias = Hello | Chunk | Done | Error
