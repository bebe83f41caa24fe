"""voxwire's wire protocol v1, sans-I/O: frames, their msgpack codec, and the per-connection stream table.

No sockets or event loops here: bytes in, frames out (``decode_client``, ``decode_server``), frames in, bytes
out (``encode``). Bad input raises ``ProtocolError`` carrying the spec's error code, and nothing else.
"""

from .close_codes import CloseCode
from .codec import MAX_CONTAINER_ITEMS, decode_client, decode_server, encode
from .constants import (
    MAX_SAMPLE_RATE,
    MAX_SPEED,
    MAX_STREAM_ID_CHARS,
    MIN_SAMPLE_RATE,
    MIN_SPEED,
    PROTOCOL_VERSION,
)
from .errors import ErrorCode, ProtocolError
from .frames import (
    Bounds,
    Cancel,
    Chunk,
    ClientFrame,
    Done,
    DoneReason,
    Draining,
    Encoding,
    Error,
    Hello,
    Limits,
    Options,
    Pace,
    ServerFrame,
    Start,
    Text,
    VoiceInfo,
)
from .streams import StreamPhase, StreamTable

__all__ = [
    "MAX_CONTAINER_ITEMS",
    "MAX_SAMPLE_RATE",
    "MAX_SPEED",
    "MAX_STREAM_ID_CHARS",
    "MIN_SAMPLE_RATE",
    "MIN_SPEED",
    "PROTOCOL_VERSION",
    "Bounds",
    "Cancel",
    "Chunk",
    "ClientFrame",
    "CloseCode",
    "Done",
    "DoneReason",
    "Draining",
    "Encoding",
    "Error",
    "ErrorCode",
    "Hello",
    "Limits",
    "Options",
    "Pace",
    "ProtocolError",
    "ServerFrame",
    "Start",
    "StreamPhase",
    "StreamTable",
    "Text",
    "VoiceInfo",
    "decode_client",
    "decode_server",
    "encode",
]
