"""Who may open a WebSocket: the auth token and the browser Origin, checked on the upgrade request.

Closed by default: with tokens configured, a request without one of them is refused; browsers may connect
only from the server's own origin (the ``Origin`` header's host equal to the ``Host`` header) or from
``allowed_origins`` (``*``: any). Programs send no ``Origin`` and pass that check.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

ANY_ORIGIN = "*"


def token_ok(query: Mapping[str, str], headers: Mapping[str, str], tokens: tuple[str, ...]) -> bool:
    """The request carries one of ``tokens`` (``?token=`` first, else ``Authorization: Bearer``)."""
    if not tokens:
        return True
    given = query.get("token")
    auth = headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given:
        return False
    # Compare against every token, in constant time, so timing tells nothing about which one is close.
    matches = [hmac.compare_digest(given.encode(), token.encode()) for token in tokens]
    return any(matches)


def origin_ok(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """A browser page may connect from the server's own origin or an allowed one; a program always may."""
    if origin is None:
        return True
    if ANY_ORIGIN in allowed or origin in allowed:
        return True
    if host is None:
        return False
    try:
        origin_host = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(origin_host) and origin_host.lower() == host.strip().lower()
