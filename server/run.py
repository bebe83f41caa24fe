"""Run the app under uvicorn, with a shutdown that first lets streams end cleanly.

uvicorn's own shutdown closes every WebSocket with 1012 at once. On SIGTERM voxwire first stops accepting,
gives open streams ``shutdown_grace_s`` to finish (cancelling the rest), sends ``done`` for every stream,
closes each connection with 1001, and only then lets uvicorn finish.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from voxwire.server.app import Hub, create_app
from voxwire.server.settings import Settings

log = logging.getLogger(__name__)


_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']*")


class RedactTokens(logging.Filter):
    """uvicorn logs request paths with their query; a ``?token=`` secret must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", message)
            record.args = ()
        return True


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, with a denial response (our 401 and 403) counted as the end of
    the handshake: uvicorn 0.54 logs "ASGI callable returned without completing handshake" at ERROR after
    every refused token otherwise (Kludex/uvicorn#3138, open), and alerts on that log level would fire."""

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting before draining
        await self._hub.drain()
        await super().shutdown(sockets)


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code (1 if the voices could not be loaded)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    redact = RedactTokens()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(redact)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws=_WebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,
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
