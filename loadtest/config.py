"""What a load run does (`LoadConfig`), and how its streams are laid out over connections and processes."""

import enum
import math
from dataclasses import dataclass

from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from voxwire.protocol import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Pace

from .corpus import BUILTIN_REPLIES


class TokenPlacement(enum.StrEnum):
    """Where the auth token travels: an `Authorization: Bearer` header, or a `?token=` query parameter."""

    HEADER = "header"
    QUERY = "query"


@dataclass(frozen=True)
class LoadConfig:
    """A load run: `streams` concurrent stream slots against `url`, for `duration_s` seconds.

    Slot i (0-based) starts at `ramp_s * i / streams` seconds; each slot speaks one reply after another until
    `duration_s` seconds after the run began (the ramp counts in the duration), then its reply in flight
    finishes; whatever is still open `grace_s` seconds later is given up. Slots share connections
    `streams_per_conn` at a time; connections are spread over `procs` worker processes.
    """

    url: str
    streams: int = 1
    duration_s: float = 10.0
    ramp_s: float = 0.0
    procs: int = 1
    streams_per_conn: int = 1
    texts: tuple[str, ...] = BUILTIN_REPLIES
    token_rate: float = 30.0
    """Text tokens sent per second per stream."""
    cancel_rate: float = 0.0
    """The fraction of streams that get a `cancel` (barge-in)."""
    jitter_ms: float = 100.0
    """The simulated client's jitter buffer (see `loadtest.playback`)."""
    token: str | None = None
    token_placement: TokenPlacement = TokenPlacement.HEADER
    seed: int = 0
    sample_rate: int | None = None
    voice: str | None = None
    pace: Pace | None = None
    """Each stream's `start.pace` (None: the server's default, realtime)."""
    grace_s: float = 10.0
    stream_timeout_s: float = 30.0
    """A stream that hears nothing from the server for this long after its last frame is given up."""
    connect_timeout_s: float = 10.0
    """The bound on opening a connection (TCP, handshake) and on waiting for its `hello`."""

    def __post_init__(self) -> None:
        try:
            parse_uri(self.url)
        except InvalidURI as error:
            raise ValueError(f"url must be a ws:// or wss:// URL: {error}") from None
        for name in ("streams", "procs", "streams_per_conn"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if not 0 <= self.ramp_s <= self.duration_s:
            raise ValueError(f"ramp_s must be within [0, duration_s={self.duration_s}], got {self.ramp_s}")
        if self.token_rate <= 0:
            raise ValueError(f"token_rate must be positive, got {self.token_rate}")
        if not 0 <= self.cancel_rate <= 1:
            raise ValueError(f"cancel_rate must be within [0, 1], got {self.cancel_rate}")
        for name in ("jitter_ms", "grace_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("stream_timeout_s", "connect_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.texts or not all(text.strip() for text in self.texts):
            raise ValueError("texts must hold at least one text, and no empty ones")
        if self.sample_rate is not None and not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(
                f"sample_rate must be within [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}], got {self.sample_rate}"
            )
        object.__setattr__(self, "token_placement", TokenPlacement(self.token_placement))

    @property
    def connections(self) -> int:
        return math.ceil(self.streams / self.streams_per_conn)

    @property
    def worker_procs(self) -> int:
        """How many processes actually run: no more than there are connections."""
        return min(self.procs, self.connections)


@dataclass(frozen=True)
class ConnectionPlan:
    """One connection of the run: its index, its stream slots, and when each slot starts (s after t0)."""

    index: int
    slots: tuple[int, ...]
    slot_starts_s: tuple[float, ...]

    @property
    def start_s(self) -> float:
        return self.slot_starts_s[0]


def plan_connections(config: LoadConfig, proc: int = 0) -> list[ConnectionPlan]:
    """The connections worker process `proc` (of `config.worker_procs`) runs.

    Connection c holds slots c*K .. c*K+K-1 (K = `streams_per_conn`) and goes to process c mod P, so that
    every process ramps up at the same pace.
    """
    procs = config.worker_procs
    if not 0 <= proc < procs:
        raise ValueError(f"proc must be within [0, {procs}), got {proc}")
    per_conn = config.streams_per_conn
    plans = []
    for index in range(proc, config.connections, procs):
        slots = tuple(range(index * per_conn, min((index + 1) * per_conn, config.streams)))
        starts = tuple(config.ramp_s * slot / config.streams for slot in slots)
        plans.append(ConnectionPlan(index=index, slots=slots, slot_starts_s=starts))
    return plans
