"""The Starlette app: WebSocket ``/v1/ws``, ``GET /health``, ``GET /metrics``, and the web client at ``/``.

The voices load in the background after start-up, so ``/health`` answers 503 until they are ready and load
balancers can hold traffic back; WebSocket clients that come too early get ``overloaded`` and a close.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from voxwire import __version__
from voxwire.engine.build import build_engine
from voxwire.engine.worker import EngineWorker
from voxwire.protocol import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    CloseCode,
    Error,
    ErrorCode,
    Hello,
    Limits,
    VoiceInfo,
    encode,
)
from voxwire.server.connection import Connection
from voxwire.server.metrics import Metrics
from voxwire.server.settings import Settings

log = logging.getLogger(__name__)

COMMON_SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


class Hub:
    """The server's state: the engine worker, open connections, and the shutdown switch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.worker: EngineWorker | None = None
        self.hello: Hello | None = None
        self.connections: set[Connection] = set()
        self.shutting_down = False
        self.on_fatal: Callable[[], None] | None = None
        """Called when the server cannot serve at all (a voice failed to load); ``run`` exits non-zero."""
        self._load_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._load_task = asyncio.create_task(self._load_or_die(), name="voxwire-load-voices")

    async def _load_or_die(self) -> None:
        try:
            await self._load()
        except Exception:
            log.exception("could not load the voices %s; shutting down", ", ".join(self.settings.voices))
            if self.on_fatal is not None:
                self.on_fatal()
            raise

    async def _load(self) -> None:
        settings = self.settings
        worker = await asyncio.to_thread(build_engine, settings.engine_config(), self._observe_step)
        worker.start()
        infos = tuple(VoiceInfo(v.id, v.language, v.sample_rate) for v in worker.voices)
        rates = tuple(sorted({*COMMON_SAMPLE_RATES, *(v.sample_rate for v in infos)}))
        self.hello = Hello(
            server=f"voxwire/{__version__}",
            voices=infos,
            sample_rates=tuple(r for r in rates if MIN_SAMPLE_RATE <= r <= MAX_SAMPLE_RATE),
            limits=Limits(
                max_streams=settings.max_streams,
                max_text_bytes=settings.max_text_bytes,
                max_frame_bytes=settings.max_frame_bytes,
                max_connections=settings.max_connections,
                max_buffered_audio_ms=settings.max_buffered_audio_ms,
            ),
        )
        self.worker = worker
        log.info("ready: voices %s", ", ".join(v.id for v in infos))

    @property
    def ready(self) -> bool:
        return self.worker is not None and not self.shutting_down

    def _observe_step(self, kind: str, size: int, seconds: float) -> None:
        self.metrics.batch_size.labels(kind=kind).observe(size)
        self.metrics.step_seconds.labels(kind=kind).observe(seconds)

    async def drain(self) -> None:
        """Graceful shutdown: refuse new streams, let open ones finish within the grace period, close 1001."""
        self.shutting_down = True
        connections = list(self.connections)
        log.info("shutting down: %d connection(s)", len(connections))
        await asyncio.gather(
            *(c.drain(self.settings.shutdown_grace_s) for c in connections), return_exceptions=True
        )

    async def stop(self) -> None:
        if self._load_task is not None:
            self._load_task.cancel()
            await asyncio.gather(self._load_task, return_exceptions=True)
        if self.worker is not None:
            await self.worker.stop()

    def refresh_engine_gauges(self) -> None:
        if self.worker is None:
            return
        stats = self.worker.stats()
        m = self.metrics
        m.engine_streams.set(stats.streams)
        m.engine_queue.labels(kind="segments").set(stats.queued_texts)
        m.engine_queue.labels(kind="windows").set(stats.queued_windows)
        m.engine_paused.set(stats.paused_streams)
        m.engine_capacity.set(stats.capacity_streams if stats.capacity_streams != float("inf") else -1)


def _token_ok(websocket: WebSocket, tokens: tuple[str, ...]) -> bool:
    if not tokens:
        return True
    given = websocket.query_params.get("token")
    auth = websocket.headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given:
        return False
    # Compare against every token, in constant time, so timing tells nothing about which one is close.
    matches = [hmac.compare_digest(given.encode(), t.encode()) for t in tokens]
    return any(matches)


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
    if not _token_ok(websocket, settings.tokens):
        log.warning("refused WebSocket from %s: missing or wrong token", websocket.client)
        await _refuse(websocket, 401, "missing or wrong token")
        return
    origin = websocket.headers.get("origin")
    if settings.allowed_origins and origin is not None and origin not in settings.allowed_origins:
        log.warning("refused WebSocket from origin %r", origin)
        await _refuse(websocket, 403, "origin not allowed")
        return
    if hub.worker is None or hub.hello is None or hub.shutting_down:
        await _overloaded(websocket, hub, "the server is not ready (loading or shutting down); retry shortly")
        return
    if len(hub.connections) >= settings.max_connections:
        await _overloaded(
            websocket, hub, f"the server is at its limit of {settings.max_connections} connections"
        )
        return
    # Take the slot before the first await, so simultaneous handshakes cannot all pass the check.
    connection = Connection(
        websocket, hub.worker, settings, hub.metrics, hub.hello, lambda: hub.shutting_down
    )
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
    return PlainTextResponse("shutting down" if hub.shutting_down else "loading", status_code=503)


async def metrics(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    hub.refresh_engine_gauges()
    return Response(hub.metrics.render(), media_type="text/plain; version=0.0.4")


def _web_dir() -> Path | None:
    path = Path(str(resources.files("voxwire.web")))
    return path if (path / "index.html").is_file() else None


def create_app(settings: Settings) -> Starlette:
    hub = Hub(settings)

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
        Route("/metrics", metrics),
    ]
    web = _web_dir()
    if web is not None:
        routes.append(Mount("/", StaticFiles(directory=web, html=True), name="web"))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    return app
