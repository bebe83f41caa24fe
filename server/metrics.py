"""Prometheus metrics for one app instance (its own registry: no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("voxwire_connections", "Open WebSocket connections", registry=r)
        self.streams_active = Gauge("voxwire_streams_active", "Streams open on this server", registry=r)
        self.stream_tasks = Gauge("voxwire_stream_tasks", "Live per-stream asyncio tasks", registry=r)
        self.streams_total = Counter("voxwire_streams", "Streams ended, by reason", ["reason"], registry=r)
        self.cancels = Counter("voxwire_cancels", "Streams cancelled by the client", registry=r)
        self.errors = Counter("voxwire_errors", "Error frames sent, by code", ["code"], registry=r)
        self.first_audio = Histogram(
            "voxwire_first_audio_seconds",
            "Time from a stream's first text to its first chunk",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.audio_seconds = Counter(
            "voxwire_audio_seconds", "Audio queued to clients (a cancel may drop the tail)", registry=r
        )
        self.engine_streams = Gauge(
            "voxwire_engine_streams", "Streams known to the engine worker", registry=r
        )
        self.engine_asap = Gauge(
            "voxwire_engine_asap_streams", "Streams made as fast as spare capacity allows", registry=r
        )
        self.engine_queue = Gauge("voxwire_engine_queue", "Work queued in the engine", ["kind"], registry=r)
        self.engine_paused = Gauge(
            "voxwire_engine_paused_streams",
            "Streams paused because their client reads too slowly",
            registry=r,
        )
        self.engine_capacity = Gauge(
            "voxwire_engine_capacity_streams",
            "Streams the engine can hold in real time (calibrated at start, then measured)",
            registry=r,
        )
        self.capacity_used = Gauge(
            "voxwire_capacity_used",
            "Streams the engine holds over its capacity estimate (0 with no estimate); scale out on it",
            registry=r,
        )
        self.ready = Gauge(
            "voxwire_ready", "1 when /ready answers 200 (this server would admit a new stream)", registry=r
        )
        self.batch_size = Histogram(
            "voxwire_engine_batch_size",
            "Items per engine batch",
            ["kind"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.step_seconds = Histogram(
            "voxwire_engine_step_seconds",
            "Wall time of one engine batch; a step longer than the audio a client holds is an underrun",
            ["kind"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
