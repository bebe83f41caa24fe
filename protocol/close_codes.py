"""The WebSocket close codes a voxwire server sends (RFC 6455 section 7.4 and the IANA registry).

``docs/protocol.md`` says when each is sent and what a client should do.
"""

import enum


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    """Only to echo a client's own close."""
    GOING_AWAY = 1001
    """The server is shutting down; every stream got its ``done`` first."""
    INVALID_DATA = 1007
    """A text message that is not valid UTF-8 (sent by the WebSocket layer)."""
    POLICY_VIOLATION = 1008
    """Auth or Origin refused without an HTTP response, or a client that never reads its error frames."""
    MESSAGE_TOO_BIG = 1009
    """An incoming message over ``max_frame_bytes`` (sent by the WebSocket layer)."""
    INTERNAL_ERROR = 1011
    """A keepalive ping went unanswered (sent by the WebSocket layer)."""
    SERVICE_RESTART = 1012
    """Sent by uvicorn to a connection that voxwire's drain did not cover; treat like 1001."""
    TRY_AGAIN_LATER = 1013
    """After ``error`` ``overloaded``: the server is full or not ready."""
