"""Fixed numbers of protocol v1 (the server's configurable limits travel in ``hello.limits``)."""

PROTOCOL_VERSION = 1
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000
MIN_SPEED = 0.5
MAX_SPEED = 2.0
MAX_STREAM_ID_CHARS = 64
MAX_OPTION_MS = 60_000
"""The largest value of a ``start`` option in milliseconds the protocol accepts; servers announce their own
bounds in ``hello.options``."""
