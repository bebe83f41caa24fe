"""Readiness by capacity: whether this server would admit a new stream now, with hysteresis.

A load balancer or an orchestrator asks ``GET /ready`` to decide where new connections go. The server is
ready when it has loaded its voices, is not draining, has not failed, and the streams in use are below
``NOT_READY_AT`` of the engine's capacity estimate. Once it is not ready for load, it stays so until the
streams in use fall to ``READY_AGAIN_AT`` of the estimate, so that a server near the threshold does not flap
in and out of the balancer with every stream that starts or ends.

The streams in use are every realtime stream the engine holds, idle ones included (``asap`` streams use
spare capacity only and count neither here nor in admission). The engine's own admission counts
only streams with work, or idle for less than its grace period, so it never counts more: readiness turns
false while admission still has room, and a balancer that honours it stops sending new streams before
``overloaded`` refusals start.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

NOT_READY_AT = 0.9
"""Not ready once the streams in use reach this fraction of the capacity estimate."""
READY_AGAIN_AT = 0.7
"""Ready again once they fall to this fraction of it."""


class State(enum.StrEnum):
    """The answer of ``/ready``, its body: ``ready``, or why not."""

    READY = "ready"
    LOADING = "loading"
    DRAINING = "draining"
    FAILED = "failed"
    FULL = "full"


@dataclass(frozen=True)
class Load:
    """The engine's load at one moment."""

    in_use: int
    """Realtime streams the engine holds."""
    capacity: float
    """Streams it can keep in real time, by its own estimate (inf when it has none)."""

    @property
    def used(self) -> float:
        """``in_use`` over the capacity estimate (at least one stream); 0 while it is not measured."""
        if math.isinf(self.capacity):
            return 0.0
        return self.in_use / max(1.0, self.capacity)


class CapacityGate:
    """Full or not by load, with hysteresis: full at ``not_ready_at``, free again at ``ready_again_at``."""

    def __init__(self, not_ready_at: float = NOT_READY_AT, ready_again_at: float = READY_AGAIN_AT) -> None:
        if not 0 < ready_again_at < not_ready_at <= 1:
            raise ValueError(
                f"need 0 < ready_again_at < not_ready_at <= 1, got {ready_again_at} and {not_ready_at}"
            )
        self.not_ready_at = not_ready_at
        self.ready_again_at = ready_again_at
        self.full = False

    def update(self, load: Load) -> bool:
        """Whether the server is full, given its load now; returns the new state."""
        used = load.used
        if self.full and used <= self.ready_again_at:
            self.full = False
        elif not self.full and used >= self.not_ready_at:
            self.full = True
        return self.full
