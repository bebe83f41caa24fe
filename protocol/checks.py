"""Field checks shared by the frame classes: each returns quietly or raises ``INVALID_FIELD``.

The messages name the field, say what it must be, and show what came (shortened, so that a huge value is not
echoed back to the client).
"""

import math
from typing import Any

from .constants import MAX_SAMPLE_RATE, MAX_STREAM_ID_CHARS, MIN_SAMPLE_RATE
from .errors import ErrorCode, ProtocolError

_SHOWN_CHARS = 40


def show(value: Any) -> str:
    """Describe a received value briefly, in the wire's own terms (nil, true, false, list, map)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"a map of {len(value)} key{'' if len(value) == 1 else 's'}"
    if isinstance(value, str | bytes) and len(value) > _SHOWN_CHARS:
        return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} long)"
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def invalid(name: str, must: str, value: Any, stream: str | None) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, f"field {name!r} must be {must}, got {show(value)}", stream)


def is_unicode(value: str) -> bool:
    """No lone surrogates: the string can be sent as UTF-8 (the wire never carries one; Python may)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_stream_id(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_STREAM_ID_CHARS and is_unicode(value)


def check_stream_id(value: Any, name: str = "stream") -> None:
    if not is_stream_id(value):
        raise invalid(name, f"a string of 1 to {MAX_STREAM_ID_CHARS} characters", value, None)


def check_str(name: str, value: Any, stream: str | None, *, non_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise invalid(name, "a string", value, stream)
    if non_empty and not value:
        raise invalid(name, "a non-empty string", value, stream)
    if not is_unicode(value):
        raise invalid(name, "valid Unicode (a lone surrogate is not)", value, stream)


def check_bool(name: str, value: Any, stream: str | None) -> None:
    if not isinstance(value, bool):
        raise invalid(name, "true or false", value, stream)


def check_int(name: str, value: Any, stream: str | None, low: int, high: int | None = None) -> None:
    """An integer (never a bool) from ``low`` to ``high`` inclusive; no upper bound when ``high`` is None."""
    in_range = isinstance(value, int) and low <= value and (high is None or value <= high)
    if isinstance(value, bool) or not in_range:
        must = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
        raise invalid(name, must, value, stream)


def check_sample_rate(name: str, value: Any, stream: str | None) -> None:
    check_int(name, value, stream, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)


def check_number(name: str, value: Any, stream: str | None, low: float, high: float | None = None) -> None:
    """A finite int or float (never a bool) from ``low`` to ``high``; no upper bound when ``high`` is None."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = is_int or (isinstance(value, float) and math.isfinite(value))
    if not is_number or value < low or (high is not None and value > high):
        must = f"a number from {low} to {high}" if high is not None else f"a number of at least {low}"
        raise invalid(name, must, value, stream)
