"""Run the app under uvicorn, with a shutdown that first lets streams end cleanly.

uvicorn's own shutdown closes every WebSocket with 1012 at once. On SIGTERM voxwire first stops accepting,
gives open streams ``shutdown_grace_s`` to finish (cancelling the rest), sends ``done`` for every stream,
closes each connection with 1001, and only then lets uvicorn finish.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import resource
import signal
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from voxwire.engine.build import VoiceLoader, load_configured_voice
from voxwire.server.app import create_app
from voxwire.server.hub import Hub
from voxwire.server.settings import Settings

log = logging.getLogger(__name__)

HTTP_HEADROOM = 64
"""Connections beyond the WebSockets' own limit for health checks, metrics and the demo page."""


_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']*")


class RedactTokens(logging.Filter):
    """uvicorn logs request paths with their query; a ``?token=`` secret must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", message)
            record.args = ()
        return True


LINGER_S = 2.0
"""After failing a connection for a frame it cannot take, how long the server reads and drops what the client
still sends before it closes the socket, unless the client closes first."""


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, with two changes.

    A denial response (our 401 and 403) counts as the end of the handshake: uvicorn 0.54 logs "ASGI callable
    returned without completing handshake" at ERROR after every refused token otherwise (Kludex/uvicorn#3138,
    open), and alerts on that log level would fire.

    A connection failed by the frame parser (a message past ``max_frame_bytes``, close 1009; or a frame it
    cannot read) closes lingering: uvicorn writes the close frame and closes the socket at once, while the
    rest of the client's message may still be arriving; a socket closed with unread data answers with a
    reset, which can reach the client before it has read the close frame, and the client then sees a
    dropped connection rather than the close code. Here the close frame goes out, the server half-closes
    (FIN), and what still arrives is dropped until the client closes or ``LINGER_S`` has passed.
    """

    _failed = False

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True

    def handle_parser_exception(self) -> None:
        if self._failed:
            return
        self._failed = True
        close = self.conn.close_sent
        assert close is not None, "the parser failed the connection, so a close frame is queued"
        self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.read_paused:  # a message waiting for the app paused reading; the drain needs it back
            self.read_paused = False
            self.transport.resume_reading()
        # As after a close the app sends: uvicorn leaves the socket to this timer once the app has returned,
        # and cancels it when the client closes first.
        self.close_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self._failed:  # else the connection has failed: what the client still sends is dropped
            super().data_received(data)


class _TimedHandshakeProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head (and so for a WebSocket's upgrade
    request): uvicorn itself waits forever for a connection that never completes its request, so hundreds
    of half-open connections could hold the server's sockets. ``handshake_timeout_s`` is set per server
    (:func:`_http_protocol`)."""

    handshake_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._request_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        scope = self.scope
        super().data_received(data)
        if self.scope is not scope:  # a request's head has arrived (an upgrade hands the socket over)
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # keep-alive: the next request's head gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._request_deadline = self.loop.call_later(self.handshake_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _timed_out(self) -> None:
        log.debug("dropped a connection whose request did not arrive within %s s", self.handshake_timeout_s)
        self.transport.close()


def _http_protocol(handshake_timeout_s: float) -> type[H11Protocol]:
    return type(
        "TimedHandshakeProtocol", (_TimedHandshakeProtocol,), {"handshake_timeout_s": handshake_timeout_s}
    )


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting before draining
        await self._hub.drain()
        await super().shutdown(sockets)


def serve(settings: Settings, load: VoiceLoader = load_configured_voice) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code: 0 after a drain, 1 when the server could not
    serve (the voices did not load, or the engine stopped)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _log_doors(settings)
    _raise_file_limit()
    app = create_app(settings, load)
    redact = RedactTokens()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(redact)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=_http_protocol(settings.handshake_timeout_s),
        ws=_WebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=settings.ping_timeout_s,
        # Concurrent connections and requests in all; past it uvicorn answers plain HTTP with 503. WebSockets
        # are bounded by max_connections (and idle ones make room), half-open requests by the deadline above.
        limit_concurrency=2 * settings.max_connections + HTTP_HEADROOM,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    hub: Hub = app.state.hub
    server = _DrainingServer(config, hub)
    failed = False

    def fatal() -> None:
        nonlocal failed
        failed = True
        server.should_exit = True

    hub.on_fatal = fatal
    # uvicorn re-raises the signal that stopped it once it is done, which would turn a clean drain into
    # death by SIGTERM (exit status 143). After a drain, voxwire exits 0: the handlers uvicorn restores
    # before re-raising are these no-ops.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    server.run()
    return 1 if failed else 0


def _log_doors(settings: Settings) -> None:
    """Say at start whether clients must authenticate, and warn when anyone on the network can connect."""
    if settings.tokens:
        log.info("auth is on: WebSocket clients need one of %d token(s)", len(settings.tokens))
        return
    log.info("auth is off: any client that can reach %s:%d may connect", settings.host, settings.port)
    if not _loopback(settings.host):
        log.warning(
            "listening on %s without tokens: anyone on the network can use this server; set --tokens",
            settings.host,
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _raise_file_limit() -> None:
    """Each connection holds a file descriptor: take the hard limit the system allows, not the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, error)
