"""The Starlette app: WebSocket ``/v1/ws``, ``GET /health``, ``/live``, ``/ready``, ``/metrics``, and the web
client at ``/``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from voxwire.engine.build import VoiceLoader, load_configured_voice
from voxwire.protocol import CloseCode, Error, ErrorCode, encode
from voxwire.server.connection import Connection
from voxwire.server.doors import origin_ok, token_ok
from voxwire.server.hub import Hub
from voxwire.server.readiness import State
from voxwire.server.settings import Settings

log = logging.getLogger(__name__)


async def _refuse(websocket: WebSocket, status: int, reason: str) -> None:
    """Refuse before the WebSocket opens: an HTTP status where the server supports it, else close 1008."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(reason, status_code=status))
    else:
        await websocket.close(CloseCode.POLICY_VIOLATION, reason)


async def _overloaded(websocket: WebSocket, hub: Hub, message: str) -> None:
    await websocket.accept()
    hub.metrics.errors.labels(code=str(ErrorCode.OVERLOADED)).inc()
    await websocket.send_bytes(encode(Error(code=ErrorCode.OVERLOADED, message=message)))
    await websocket.close(CloseCode.TRY_AGAIN_LATER)


async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    settings = hub.settings
    if not token_ok(websocket.query_params, websocket.headers, settings.tokens):
        log.warning("refused WebSocket from %s: missing or wrong token", websocket.client)
        await _refuse(websocket, 401, "missing or wrong token")
        return
    origin = websocket.headers.get("origin")
    if not origin_ok(origin, websocket.headers.get("host"), settings.allowed_origins):
        log.warning("refused WebSocket from origin %r (host %r)", origin, websocket.headers.get("host"))
        await _refuse(websocket, 403, "origin not allowed")
        return
    worker, hello = hub.worker, hub.hello
    if worker is None or hello is None or not hub.ready:
        await _overloaded(websocket, hub, "the server is not ready (loading or shutting down); retry shortly")
        return
    if len(hub.connections) >= settings.max_connections and not hub.make_room():
        await _overloaded(
            websocket, hub, f"the server is at its limit of {settings.max_connections} connections"
        )
        return
    # Take the slot before the first await, so simultaneous handshakes cannot all pass the check.
    connection = Connection(websocket, worker, settings, hub.metrics, hello, lambda: hub.shutting_down)
    hub.connections.add(connection)
    hub.metrics.connections.inc()
    try:
        await websocket.accept()
        await connection.serve()
    finally:
        hub.connections.discard(connection)
        hub.metrics.connections.dec()


async def health(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    if hub.ready:
        return PlainTextResponse("ok")
    if hub.failure is not None:
        return PlainTextResponse("failed", status_code=503)
    return PlainTextResponse("shutting down" if hub.shutting_down else "loading", status_code=503)


async def live(request: Request) -> Response:
    """Liveness: 200 while the process and its engine work (loading and draining included), 503 once the
    engine has failed (the process then exits on its own; a restart is the cure)."""
    hub: Hub = request.app.state.hub
    if hub.failure is not None:
        return PlainTextResponse("failed", status_code=503)
    return PlainTextResponse("ok")


async def ready(request: Request) -> Response:
    """Readiness: 200 ``ready`` when a new stream would be admitted now; else 503 with why: ``loading``,
    ``draining``, ``failed``, or ``full`` (near the capacity estimate, with hysteresis)."""
    hub: Hub = request.app.state.hub
    state = hub.readiness()
    return PlainTextResponse(str(state), status_code=200 if state is State.READY else 503)


async def metrics(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    hub.refresh_engine_gauges()
    return Response(hub.metrics.render(), media_type="text/plain; version=0.0.4")


def _web_dir() -> Path | None:
    path = Path(str(resources.files("voxwire.web")))
    return path if (path / "index.html").is_file() else None


def create_app(settings: Settings, load: VoiceLoader = load_configured_voice) -> Starlette:
    """The app; ``load`` loads each voice (embedders and tests may bring their own)."""
    hub = Hub(settings, load)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    routes: list[Route | WebSocketRoute | Mount] = [
        WebSocketRoute("/v1/ws", websocket_endpoint),
        Route("/health", health),
        Route("/live", live),
        Route("/ready", ready),
        Route("/metrics", metrics),
    ]
    web = _web_dir()
    if web is not None:
        routes.append(Mount("/", StaticFiles(directory=web, html=True), name="web"))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    return app
