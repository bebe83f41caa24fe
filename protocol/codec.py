"""Frames to bytes and back: each WebSocket message is one msgpack map with a string key ``type``.

``decode_client`` and ``decode_server`` raise nothing but ``ProtocolError``, whatever the input. The size of
a message is the transport's to limit (``max_frame_bytes``, close code 1009) before it gets here; decoding
still refuses containers of more than ``MAX_CONTAINER_ITEMS`` items and nesting deeper than msgpack's own
stack (1024 levels), so that no input costs more than a small multiple of its size.

Choices beyond the spec: a key holding nil counts as absent (so ``{"voice": nil}`` asks for the default
voice); keys other than the frame's fields are ignored, whatever they hold, but every key of a map this
module reads must be a string; ``encode`` leaves out the optional fields that are None.
"""

from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any, TypeVar

import msgpack

from .checks import invalid, is_stream_id, show
from .errors import ErrorCode, ProtocolError
from .frames import (
    Bounds,
    Cancel,
    Chunk,
    ClientFrame,
    Done,
    Draining,
    Error,
    Hello,
    Limits,
    Options,
    ServerFrame,
    Start,
    Text,
    VoiceInfo,
)

MAX_CONTAINER_ITEMS = 4096

_CLIENT_TYPES: dict[str, type[ClientFrame]] = {"start": Start, "text": Text, "cancel": Cancel}
_SERVER_TYPES: dict[str, type[ServerFrame]] = {
    "hello": Hello,
    "chunk": Chunk,
    "done": Done,
    "error": Error,
    "draining": Draining,
}
_TYPE_NAMES: dict[type, str] = {cls: name for name, cls in (_CLIENT_TYPES | _SERVER_TYPES).items()}
_T = TypeVar("_T")


def encode(frame: ClientFrame | ServerFrame) -> bytes:
    """The msgpack bytes of ``frame``: a map of ``type`` and its fields, the None ones left out."""
    name = _TYPE_NAMES.get(type(frame))
    if name is None:
        raise TypeError(f"encode() takes a protocol frame, got {type(frame).__name__}")
    packed = msgpack.packb({"type": name, **_wire_map(frame)}, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


def decode_client(data: bytes | str) -> ClientFrame:
    """The client frame in one WebSocket message; a text message (``str``) is refused as ``bad_frame``."""
    return _decode(data, _CLIENT_TYPES, "client")


def decode_server(data: bytes | str) -> ServerFrame:
    """The server frame in one WebSocket message, checked as strictly as the server checks its clients."""
    return _decode(data, _SERVER_TYPES, "server")


_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {
    cls: tuple(
        (spec.name, spec.default is MISSING and spec.default_factory is MISSING) for spec in fields(cls)
    )
    for cls in (*_CLIENT_TYPES.values(), *_SERVER_TYPES.values(), VoiceInfo, Limits, Options, Bounds)
}
"""Each frame class's field names, each with whether it is required."""


def _wire_map(frame: object) -> dict[str, Any]:
    wire: dict[str, Any] = {}
    for name, _ in _FIELDS[type(frame)]:
        value = getattr(frame, name)
        if value is None:
            continue
        if isinstance(value, VoiceInfo | Limits | Options | Bounds):
            value = _wire_map(value)
        elif isinstance(value, tuple):
            value = [_wire_map(item) if isinstance(item, VoiceInfo) else item for item in value]
        wire[name] = value
    return wire


def _decode(data: bytes | str, types: Mapping[str, type[_T]], direction: str) -> _T:
    mapping = _unpack_map(data)
    stream = mapping.get("stream")
    stream = stream if is_stream_id(stream) else None
    frame_type = mapping.get("type")
    if not isinstance(frame_type, str):
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"frame must have a string field 'type', got {show(frame_type)}", stream
        )
    cls = types.get(frame_type)
    if cls is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown {direction} frame type {show(frame_type)}; expected one of {', '.join(types)}",
            stream,
        )
    return _build(cls, mapping, stream, f" in a {frame_type!r} frame")


def _unpack_map(data: bytes | str) -> dict[str, Any]:
    if isinstance(data, str):
        raise ProtocolError(ErrorCode.BAD_FRAME, "frames must be binary msgpack messages, got a text message")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frames must be binary msgpack, got {type(data).__name__}")
    if not data:
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame is empty; send one msgpack map per message")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_array_len=MAX_CONTAINER_ITEMS,
            max_map_len=MAX_CONTAINER_ITEMS,
        )
    except msgpack.ExtraData as exc:
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            f"frame has {len(exc.extra)} bytes after its msgpack value; send one per message",
        ) from None
    except msgpack.StackError:
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame nests msgpack containers too deeply") from None
    except UnicodeDecodeError:
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame holds a string that is not valid UTF-8") from None
    # msgpack reports every other malformation as a ValueError (some as TypeError or OverflowError).
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame is not valid msgpack: {show(str(exc))}") from None
    return _string_keyed(value, "frame", ErrorCode.BAD_FRAME, None)


def _string_keyed(value: Any, what: str, code: ErrorCode, stream: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(code, f"{what} must be a msgpack map, got {show(value)}", stream)
    for key in value:
        if not isinstance(key, str):
            raise ProtocolError(code, f"{what} has a key that is not a string: {show(key)}", stream)
    return value


def _build(cls: type[_T], mapping: Mapping[str, Any], stream: str | None, where: str = "") -> _T:
    """``cls`` from the fields present in ``mapping``; a required field missing is ``invalid_field``."""
    convert = _NESTED.get(cls, {})
    kwargs: dict[str, Any] = {}
    for name, required in _FIELDS[cls]:
        value = mapping.get(name)
        if value is None:
            if required:
                raise ProtocolError(ErrorCode.INVALID_FIELD, f"field {name!r} is required{where}", stream)
            continue
        kwargs[name] = convert[name](value) if name in convert else value
    return cls(**kwargs)


def _voices(value: Any) -> list[VoiceInfo]:
    if not isinstance(value, list):
        raise invalid("voices", "a list of maps", value, None)
    return [_nested(VoiceInfo, f"voices[{index}]", item) for index, item in enumerate(value)]


def _limits(value: Any) -> Limits:
    return _nested(Limits, "limits", value)


def _options(value: Any) -> Options:
    mapping = _string_keyed(value, "field 'options'", ErrorCode.INVALID_FIELD, None)
    bounds = {
        name: _nested(Bounds, f"options.{name}", mapping[name])
        for name in ("max_buffer_delay_ms", "first_chunk_ms")
        if mapping.get(name) is not None
    }
    try:
        return _build(Options, {**mapping, **bounds}, None)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, f"options: {exc.message}") from None


def _nested(cls: type[_T], where: str, value: Any) -> _T:
    mapping = _string_keyed(value, f"field {where!r}", ErrorCode.INVALID_FIELD, None)
    try:
        return _build(cls, mapping, None)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, f"{where}: {exc.message}") from None


_NESTED: dict[type, dict[str, Callable[[Any], Any]]] = {
    Hello: {"voices": _voices, "limits": _limits, "options": _options}
}
