"""The server's state: the engine, the open connections, and the switches that end it all.

The voices load in the background after start-up, so ``/health`` answers 503 until they are ready. If the
engine cannot load, or its thread dies later, the server cannot serve at all: every open stream has failed
by then, ``/health`` turns 503, and ``on_fatal`` makes the process drain and exit non-zero, for a
supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from voxwire import __version__
from voxwire.engine.build import VoiceLoader, build_engine, load_configured_voice
from voxwire.engine.scheduler import SchedulerStats
from voxwire.engine.worker import EngineWorker
from voxwire.protocol import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    Bounds,
    Encoding,
    Hello,
    Limits,
    Options,
    Pace,
    VoiceInfo,
)
from voxwire.server.connection import Connection
from voxwire.server.metrics import Metrics
from voxwire.server.readiness import CapacityGate, Load, State
from voxwire.server.settings import Settings

log = logging.getLogger(__name__)

COMMON_SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_BUFFER_DELAY_MS = 10_000
"""The longest a stream may ask its text to wait for a sentence end (``start.max_buffer_delay_ms``)."""


def _load_of(stats: SchedulerStats) -> Load:
    # asap streams use spare capacity only and are not admitted by it: they do not fill a replica.
    return Load(in_use=stats.streams - stats.asap_streams, capacity=stats.capacity_streams)


def _options(worker: EngineWorker) -> Options:
    """What ``start`` may ask of this server beyond the spec's fields (``hello.options``)."""
    smallest, default, largest = worker.first_window_bounds_ms()
    return Options(
        paces=tuple(Pace),
        encodings=tuple(Encoding),
        max_buffer_delay_ms=Bounds(0, MAX_BUFFER_DELAY_MS),
        first_chunk_ms=Bounds(smallest, largest, default),
        breaks=True,
        words=True,
    )


class Hub:
    def __init__(self, settings: Settings, load: VoiceLoader = load_configured_voice) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.worker: EngineWorker | None = None
        self.hello: Hello | None = None
        self.connections: set[Connection] = set()
        self.shutting_down = False
        self.failure: str | None = None
        """Why the server cannot serve (the engine did not load, or it stopped); None while it can."""
        self.on_fatal: Callable[[], None] | None = None
        """Called once when ``failure`` is set; ``voxwire serve`` then drains and exits non-zero."""
        self._load = load
        self._load_task: asyncio.Task[None] | None = None
        self._gate = CapacityGate()

    @property
    def ready(self) -> bool:
        return self.worker is not None and not self.shutting_down and self.failure is None

    async def start(self) -> None:
        self._load_task = asyncio.create_task(self._load_engine(), name="voxwire-load-voices")

    async def stop(self) -> None:
        if self._load_task is not None:
            self._load_task.cancel()
            await asyncio.gather(self._load_task, return_exceptions=True)
        if self.worker is not None:
            await self.worker.stop()

    def readiness(self, load: Load | None = None) -> State:
        """Whether this server would admit a new stream now (``State.READY``), else why not (``load``: the
        engine's load, when the caller has just read it)."""
        if self.failure is not None:
            return State.FAILED
        if self.shutting_down:
            return State.DRAINING
        if self.worker is None:
            return State.LOADING
        return State.FULL if self._gate.update(load or self.load()) else State.READY

    def load(self) -> Load:
        """The streams the engine holds and its capacity estimate (none before the voices are loaded)."""
        if self.worker is None:
            return Load(in_use=0, capacity=float("inf"))
        return _load_of(self.worker.stats())

    async def drain(self) -> None:
        """Graceful shutdown: tell every connection (``draining``), refuse new streams, let open ones finish
        within the grace period, close 1001."""
        self.shutting_down = True
        connections = list(self.connections)
        log.info("shutting down: %d connection(s)", len(connections))
        await asyncio.gather(
            *(c.drain(self.settings.shutdown_grace_s) for c in connections), return_exceptions=True
        )

    def make_room(self) -> bool:
        """At ``max_connections``: close the connection idle the longest (no active stream), so that idle
        sockets cannot lock new clients out. False when every connection has a stream."""
        idle = [c for c in self.connections if c.idle_since is not None]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        self.connections.discard(oldest)
        oldest.evict()
        log.info(
            "closed a connection idle for %.0f s to make room", time.monotonic() - (oldest.idle_since or 0)
        )
        return True

    def refresh_engine_gauges(self) -> None:
        if self.worker is None:
            return
        stats = self.worker.stats()
        m = self.metrics
        m.engine_streams.set(stats.streams)
        m.engine_asap.set(stats.asap_streams)
        m.engine_queue.labels(kind="segments").set(stats.queued_texts)
        m.engine_queue.labels(kind="windows").set(stats.queued_windows)
        m.engine_paused.set(stats.paused_streams)
        m.engine_capacity.set(stats.capacity_streams if stats.capacity_streams != float("inf") else -1)
        load = _load_of(stats)
        m.capacity_used.set(load.used)
        m.ready.set(1 if self.readiness(load) is State.READY else 0)

    async def _load_engine(self) -> None:
        settings = self.settings
        try:
            worker = await asyncio.to_thread(
                build_engine, settings.engine_config(), self._observe_step, self._engine_died, self._load
            )
        except Exception as error:
            log.exception("could not load the voices %s; shutting down", ", ".join(settings.voices))
            self._fail(f"the voices could not be loaded: {type(error).__name__}")
            return
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
                idle_timeout_ms=round(settings.idle_timeout_s * 1000),
                ping_interval_ms=round(settings.ping_interval_s * 1000),
                ping_timeout_ms=round(settings.ping_timeout_s * 1000),
            ),
            options=_options(worker),
            notices=("draining",),
        )
        self.worker = worker
        log.info("ready: voices %s", ", ".join(v.id for v in infos))

    def _engine_died(self, reason: str) -> None:
        log.critical("the engine stopped (%s): every open stream has failed; shutting down", reason)
        self._fail(f"the engine stopped: {reason}")

    def _fail(self, reason: str) -> None:
        if self.failure is not None:
            return
        self.failure = reason
        if self.on_fatal is not None:
            self.on_fatal()

    def _observe_step(self, kind: str, size: int, seconds: float) -> None:
        self.metrics.batch_size.labels(kind=kind).observe(size)
        self.metrics.step_seconds.labels(kind=kind).observe(seconds)
