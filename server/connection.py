"""One WebSocket connection's pipeline: a receiver that decodes frames, a stream session per stream, and one
sender that writes frames in order.

Await points and what can happen at each:
- ``receive``: the client vanishes -> every stream is cancelled (engine work dropped), the sender stops.
- a stream's ``put_chunk``: the client reads slowly -> the stream waits; its engine buffer fills and the
  engine stops generating for it (bounded memory).
- the sender's ``send``: the client never reads -> the sender waits; the receiver still answers cancels,
  whose ``done`` goes out first once the client reads again.
- the idle watch: no active stream for ``idle_timeout_s`` -> the connection is closed (1000, "idle timeout").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import assert_never

from starlette.websockets import WebSocket, WebSocketDisconnect

from voxwire.engine.budget import AudioBudget
from voxwire.engine.errors import Overloaded, UnknownVoice
from voxwire.engine.worker import EngineWorker
from voxwire.protocol import (
    Bounds,
    Cancel,
    ClientFrame,
    CloseCode,
    Draining,
    Error,
    ErrorCode,
    Hello,
    Options,
    Pace,
    ProtocolError,
    Start,
    StreamTable,
    Text,
    decode_client,
    encode,
)
from voxwire.protocol.checks import show
from voxwire.server.metrics import Metrics
from voxwire.server.outbox import Outbox
from voxwire.server.segmenter import SegmenterConfig, SentenceSegmenter
from voxwire.server.settings import Settings
from voxwire.server.stream import StreamOptions, StreamSession

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 5.0
DRAIN_SETTLE_S = 1.0
"""At shutdown, once a connection has no stream left, how long the client gets to close it itself after the
``draining`` notice; a ``start`` it sent before the notice reached it is read and refused meanwhile, rather
than lost in the close."""
MAX_CONTROL_BACKLOG = 1024
"""Unsent control frames (errors, dones) a connection may pile up before it is closed."""


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        worker: EngineWorker,
        settings: Settings,
        metrics: Metrics,
        hello: Hello,
        is_shutting_down: Callable[[], bool],
    ) -> None:
        self._ws = websocket
        self._worker = worker
        self._settings = settings
        self._metrics = metrics
        self._hello = hello
        self._is_shutting_down = is_shutting_down
        self._streams: StreamTable[StreamSession] = StreamTable(settings.max_streams, settings.max_text_bytes)
        self._outbox = Outbox(audio_capacity=max(2, settings.max_streams))
        self._budget = AudioBudget(settings.max_buffered_audio_ms / 1000)
        self._rates = {v.id: v.sample_rate for v in hello.voices}
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = asyncio.Event()
        self.idle_since: float | None = time.monotonic()
        """When the connection's last stream ended (or it opened); None while it has a stream."""
        self._closing: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()
        """Set when the receive loop has ended: the client left, or the connection was closed."""

    async def serve(self) -> None:
        """Run until the client leaves or the server closes the connection."""
        self._outbox.put_control(encode(self._hello))
        sender = asyncio.create_task(self._send_loop(), name="voxwire-sender")
        idle_watch = asyncio.create_task(self._close_when_idle(), name="voxwire-idle-watch")
        try:
            await self._receive_loop()
        finally:
            self._gone.set()
            for session in self._streams.owners():
                session.cancel()
            sender.cancel()
            idle_watch.cancel()
            await asyncio.gather(sender, idle_watch, return_exceptions=True)

    def evict(self) -> None:
        """Close this idle connection to make room for a new one (the server is at ``max_connections``)."""
        self._close_soon(CloseCode.NORMAL, "idle: the server needed room")

    def _close_soon(self, code: CloseCode, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.create_task(self._ws.close(code, reason), name="voxwire-close")

    async def _close_when_idle(self) -> None:
        timeout = self._settings.idle_timeout_s
        while True:
            await self._idle.wait()
            left = (self.idle_since or time.monotonic()) + timeout - time.monotonic()
            if left <= 0:
                log.info("closing a connection with no stream for %.0f s", timeout)
                self._close_soon(CloseCode.NORMAL, "idle timeout")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._busy.wait(), left)

    async def drain(self, grace_s: float) -> None:
        """Shutdown: send ``draining``, let streams finish within ``grace_s`` (cancel the rest), give the
        client ``DRAIN_SETTLE_S`` to leave on its own, then flush and close with 1001."""
        self._outbox.put_control(encode(Draining(grace_ms=round(grace_s * 1000))))
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            log.warning("shutdown grace over: cancelling %d stream(s)", len(self._streams))
            for session in self._streams.owners():
                session.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), DRAIN_SETTLE_S)
        if self._gone.is_set():
            return  # the client closed it: nothing left to send
        try:
            # A client that stopped reading must not hold the shutdown: flush for a bounded time only.
            await asyncio.wait_for(self._flush(), FLUSH_TIMEOUT_S)
        except TimeoutError:
            log.warning("shutdown: a client is not reading; closing without flushing")
        await self._ws.close(CloseCode.GOING_AWAY)

    # -- sending -----------------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            frame = await self._outbox.get()
            await self._ws.send_bytes(frame)

    async def _flush(self) -> None:
        """Write what the outbox holds now (used before a server-side close)."""
        while len(self._outbox):
            frame = await self._outbox.get()
            await self._ws.send_bytes(frame)

    def _send_error(self, code: ErrorCode, message: str, stream: str | None = None) -> None:
        """An error that ends no stream; it never overtakes frames of its stream id still queued."""
        self._metrics.errors.labels(code=str(code)).inc()
        self._outbox.put_error(stream, encode(Error(code=code, message=message, stream=stream)))

    # -- receiving ---------------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self._ws.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                data = message.get("text", "")
            try:
                self._handle(decode_client(data))
            except ProtocolError as error:
                self._reject(error)
            if self._outbox.error_backlog > MAX_CONTROL_BACKLOG:
                # The client keeps sending bad frames and never reads our answers: told, ignored, closed.
                log.warning("closing a connection that ignores %d unread error frames", MAX_CONTROL_BACKLOG)
                await self._ws.close(CloseCode.POLICY_VIOLATION, "too many unread error frames")
                return

    def _reject(self, error: ProtocolError) -> None:
        session = self._streams.owner(error.stream) if error.stream is not None else None
        # An unknown frame type ends nothing: a newer client's new frame must not end its stream here.
        if session is not None and error.code is not ErrorCode.UNKNOWN_TYPE:
            # An error tied to an active stream ends that stream (protocol guarantee 5).
            session.fail(error.code, error.message)
        else:
            self._send_error(error.code, error.message, error.stream)

    def _handle(self, frame: ClientFrame) -> None:
        match frame:
            case Start() if self._is_shutting_down():
                # Refused whatever its id, naming it; an active stream of that id goes on (this ends none).
                message = "the server is shutting down; start this stream on a new connection"
                self._send_error(ErrorCode.SHUTTING_DOWN, message, frame.stream)
                if self._streams.owner(frame.stream) is None:
                    self._streams.refuse(frame.stream)
            case Start():
                try:
                    self._start(frame)
                except ProtocolError as error:
                    self._reject(error)  # ends the active stream the error names, if any
                    if self._streams.owner(frame.stream) is None:
                        self._streams.refuse(frame.stream)
            case Text():
                session = self._streams.accept_text(frame)
                if session is not None:
                    session.add_text(frame.text, final=frame.final, flush=frame.flush)
            case Cancel():
                session = self._streams.cancel(frame.stream)
                if session is not None:
                    self._metrics.cancels.inc()
                    session.cancel(frame.played)
            case _:
                assert_never(frame)

    def _start(self, start: Start) -> None:
        voice = start.voice or self._worker.default_voice
        if voice not in self._rates:
            raise ProtocolError(
                ErrorCode.UNKNOWN_VOICE,
                f"unknown voice {show(voice)}; this server has: {', '.join(sorted(self._rates))}",
                start.stream,
            )
        session = self._streams.open(start, lambda: self._new_session(start, voice))
        self._idle.clear()
        self._busy.set()
        self.idle_since = None
        self._metrics.streams_active.inc()
        session.start()

    def _new_session(self, start: Start, voice: str) -> StreamSession:
        options = self._hello.options or Options()
        first_window = None  # the engine's default
        if start.first_chunk_ms is not None:
            _check_bounds("first_chunk_ms", start.first_chunk_ms, options.first_chunk_ms, start.stream)
            first_window = self._worker.first_window_frames(voice, start.first_chunk_ms)
        delay_ms = start.max_buffer_delay_ms
        if delay_ms is not None:
            _check_bounds("max_buffer_delay_ms", delay_ms, options.max_buffer_delay_ms, start.stream)
        try:
            engine = self._worker.open_stream(
                voice,
                start.speed or 1.0,
                self._budget,
                asap=start.pace is Pace.ASAP,
                first_window_frames=first_window,
            )
        except (Overloaded, UnknownVoice) as error:
            code = ErrorCode.OVERLOADED if isinstance(error, Overloaded) else ErrorCode.UNKNOWN_VOICE
            raise ProtocolError(code, str(error), start.stream) from error
        segmenter = SentenceSegmenter(
            SegmenterConfig(first_fragment_min_chars=self._settings.first_fragment_chars)
        )
        return StreamSession(
            start.stream,
            engine,
            start.sample_rate or self._rates[voice],
            self._outbox,
            segmenter,
            self._metrics,
            on_end=self._stream_ended,
            options=StreamOptions(
                start.encoding, None if delay_ms is None else delay_ms / 1000, words=start.words
            ),
        )

    def _stream_ended(self, session: StreamSession) -> None:
        self._streams.finish(session.stream_id)
        self._metrics.streams_active.dec()
        if not self._streams:
            self._busy.clear()
            self._idle.set()
            self.idle_since = time.monotonic()


def _check_bounds(name: str, value: int, bounds: Bounds | None, stream: str) -> None:
    """A ``start`` option within the bounds this server announces in ``hello.options``."""
    if bounds is None:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{name}: this server does not take it", stream)
    if not bounds.min <= value <= bounds.max:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"{name} must be from {bounds.min} to {bounds.max} on this server, got {value}",
            stream,
        )
