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
from .constants import MAX_OPTION_MS, MAX_SPEED, MIN_SPEED, PROTOCOL_VERSION
from .errors import ErrorCode


class DoneReason(enum.StrEnum):
    """Why a stream ended, in its ``done`` frame."""

    COMPLETE = "complete"
    CANCELLED = "cancelled"
    ERROR = "error"


class Pace(enum.StrEnum):
    """How fast a stream's audio is made: paced to playback, or as fast as spare capacity allows."""

    REALTIME = "realtime"
    ASAP = "asap"


class Encoding(enum.StrEnum):
    """How a chunk's ``audio`` holds its samples (all little-endian, mono)."""

    PCM16 = "pcm16"
    """16-bit signed integers: 2 bytes a sample."""
    MULAW = "mulaw"
    """ITU-T G.711 mu-law: 1 byte a sample."""
    ALAW = "alaw"
    """ITU-T G.711 A-law: 1 byte a sample."""
    F32 = "f32"
    """32-bit IEEE floats in [-1, 1]: 4 bytes a sample."""

    @property
    def sample_bytes(self) -> int:
        return {"pcm16": 2, "mulaw": 1, "alaw": 1, "f32": 4}[self.value]


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
    pace: Pace | None = None
    encoding: Encoding | None = None
    max_buffer_delay_ms: int | None = None
    first_chunk_ms: int | None = None

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        if self.voice is not None:
            check_str("voice", self.voice, self.stream, non_empty=True)
        if self.sample_rate is not None:
            check_sample_rate("sample_rate", self.sample_rate, self.stream)
        if self.speed is not None:
            check_number("speed", self.speed, self.stream, MIN_SPEED, MAX_SPEED)
        check_bool("words", self.words, self.stream)
        if self.pace is not None:
            _set(self, "pace", _member(Pace, "pace", self.pace, self.stream))
        if self.encoding is not None:
            _set(self, "encoding", _member(Encoding, "encoding", self.encoding, self.stream))
        if self.max_buffer_delay_ms is not None:
            check_int("max_buffer_delay_ms", self.max_buffer_delay_ms, self.stream, 0, MAX_OPTION_MS)
        if self.first_chunk_ms is not None:
            check_int("first_chunk_ms", self.first_chunk_ms, self.stream, 1, MAX_OPTION_MS)


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
    """Stop a stream now. ``played``: how many of the stream's samples the client has played (its
    playhead), so that ``done`` can say what was heard."""

    stream: str
    played: int | None = None

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        if self.played is not None:
            check_int("played", self.played, self.stream, 0)


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
class Bounds:
    """The values a numeric ``start`` option may take on this server, and its default."""

    min: int
    max: int
    default: int | None = None
    """None: the option is off unless a stream asks for it."""

    def __post_init__(self) -> None:
        check_int("min", self.min, None, 0)
        check_int("max", self.max, None, self.min)
        if self.default is not None:
            check_int("default", self.default, None, self.min, self.max)


@dataclass(frozen=True, slots=True)
class Options:
    """What ``start`` may ask of this server beyond the spec's fields, as announced in ``hello.options``."""

    paces: tuple[str, ...] = ()
    encodings: tuple[str, ...] = ()
    max_buffer_delay_ms: Bounds | None = None
    first_chunk_ms: Bounds | None = None
    breaks: bool = False
    """``<break time="..."/>`` tags in text are pauses."""
    words: bool = False
    """``start.words`` gives word timings in chunks."""

    def __post_init__(self) -> None:
        for name in ("paces", "encodings"):
            values = _as_tuple(name, getattr(self, name), None)
            for index, value in enumerate(values):
                check_str(f"{name}[{index}]", value, None, non_empty=True)
            _set(self, name, values)
        for name in ("max_buffer_delay_ms", "first_chunk_ms"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Bounds):
                raise invalid(name, "a Bounds", value, None)
        check_bool("breaks", self.breaks, None)
        check_bool("words", self.words, None)


@dataclass(frozen=True, slots=True)
class Hello:
    """The server's first frame on every connection."""

    server: str
    voices: tuple[VoiceInfo, ...]
    sample_rates: tuple[int, ...]
    limits: Limits
    protocol: int = PROTOCOL_VERSION
    options: Options | None = None
    notices: tuple[str, ...] = ()
    """Server frames beyond the spec's that this server may send unasked (``"draining"``); a client may
    ignore any frame type it does not know."""

    def __post_init__(self) -> None:
        check_str("server", self.server, None, non_empty=True)
        notices = _as_tuple("notices", self.notices, None)
        for index, notice in enumerate(notices):
            check_str(f"notices[{index}]", notice, None, non_empty=True)
        _set(self, "notices", notices)
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
        if self.options is not None and not isinstance(self.options, Options):
            raise invalid("options", "an Options", self.options, None)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a stream's audio, mono at ``sample_rate``, in ``encoding`` (absent: PCM16 little-endian).

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
    encoding: Encoding | None = None

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        check_int("seq", self.seq, self.stream, 0)
        check_int("offset", self.offset, self.stream, 0)
        check_sample_rate("sample_rate", self.sample_rate, self.stream)
        if self.encoding is not None:
            _set(self, "encoding", _member(Encoding, "encoding", self.encoding, self.stream))
        width = self.sample_bytes
        if not isinstance(self.audio, bytes) or len(self.audio) % width:
            raise invalid("audio", f"binary audio of a multiple of {width} bytes", self.audio, self.stream)
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
    def sample_bytes(self) -> int:
        return (self.encoding or Encoding.PCM16).sample_bytes

    @property
    def samples(self) -> int:
        """How many samples ``audio`` holds."""
        return len(self.audio) // self.sample_bytes


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
    """A stream is over; no chunk of it follows. ``chunks`` and ``samples`` count what was sent.

    ``heard_chars``: how much of the stream's text (in code points) was heard: all of it when complete; up to
    the end of the last word whose audio ended by the client's playhead (or the audio sent) when cancelled.
    ``heard``: that text itself, sent when the stream was cancelled.
    """

    stream: str
    reason: DoneReason | str
    chunks: int
    samples: int
    ttfa_ms: float | None = None
    heard: str | None = None
    heard_chars: int | None = None

    def __post_init__(self) -> None:
        check_stream_id(self.stream)
        _set(self, "reason", _member(DoneReason, "reason", self.reason, self.stream))
        check_int("chunks", self.chunks, self.stream, 0)
        check_int("samples", self.samples, self.stream, 0)
        if self.ttfa_ms is not None:
            check_number("ttfa_ms", self.ttfa_ms, self.stream, 0.0)
        if self.heard is not None:
            check_str("heard", self.heard, self.stream)
        if self.heard_chars is not None:
            check_int("heard_chars", self.heard_chars, self.stream, 0)


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


@dataclass(frozen=True, slots=True)
class Draining:
    """The server has begun to shut down: streams in progress go on, and every ``start`` from now on is
    refused with ``shutting_down``. Open new streams on a new connection (a load balancer sends it to
    another server). ``grace_ms``: how long streams in progress have left before they are cancelled."""

    grace_ms: int | None = None

    def __post_init__(self) -> None:
        if self.grace_ms is not None:
            check_int("grace_ms", self.grace_ms, None, 0)


ClientFrame: TypeAlias = Start | Text | Cancel
ServerFrame: TypeAlias = Hello | Chunk | Done | Error | Draining
