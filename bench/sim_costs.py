"""A GPU cost model for the simulator: how long one engine step takes, from a table of measured points.

A cost table (``bench/costs/*.json``) gives, per stage, step times in ms at a few batch sizes, each with a
``source`` saying where the figures came from; times between points are linear, beyond the last point they
go on along the last two. A window batch is read at its size in steady-window equivalents, so that first
(32 frames), large (128) and short last windows cost by their frames: the decoder's work is its input
frames, kept plus context. A step also costs host time (the scheduler and the worker loop, serial with the
GPU as one thread drives it): ``host.step_ms`` per step plus ``host.item_ms`` per item.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONTEXT_FRAMES = 22
"""Frames of context a window decodes beside the ones it keeps (11 each side)."""
STEADY_FRAMES = 64


@dataclass(frozen=True)
class Curve:
    """Step time in seconds by batch size, piecewise linear through measured points."""

    sizes: tuple[float, ...]
    seconds: tuple[float, ...]

    @classmethod
    def from_ms(cls, points: dict[str, float]) -> Curve:
        pairs = sorted((float(size), ms / 1000) for size, ms in points.items())
        if len(pairs) < 2 or pairs[0][0] < 1:
            raise ValueError(f"a cost curve needs two or more points at batch sizes >= 1, got {points}")
        return cls(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))

    def at(self, size: float) -> float:
        """Seconds for a batch of ``size`` (the first point's time for anything smaller)."""
        sizes, seconds = self.sizes, self.seconds
        if size <= sizes[0]:
            return seconds[0]
        index = min(bisect.bisect_left(sizes, size), len(sizes) - 1)
        x0, x1, y0, y1 = sizes[index - 1], sizes[index], seconds[index - 1], seconds[index]
        return y0 + (y1 - y0) * (size - x0) / (x1 - x0)


@dataclass(frozen=True)
class CostTable:
    name: str
    sentence: Curve
    window: Curve
    host_step_s: float
    host_item_s: float

    @classmethod
    def load(cls, path: Path) -> CostTable:
        data = json.loads(path.read_text())
        return cls(
            name=data["name"],
            sentence=Curve.from_ms(data["sentence_stage_ms"]["points"]),
            window=Curve.from_ms(data["window_ms"]["points"]),
            host_step_s=data["host"]["step_ms"] / 1000,
            host_item_s=data["host"]["item_ms"] / 1000,
        )

    def sentence_step_s(self, items: int) -> float:
        """A sentence-stage step of ``items`` sentences (their lengths are not modelled)."""
        return self.sentence.at(items) + self._host(items)

    def window_step_s(self, frames: Sequence[int]) -> float:
        """A window-decoder step whose windows keep ``frames`` frames each."""
        equivalents = sum(f + CONTEXT_FRAMES for f in frames) / (STEADY_FRAMES + CONTEXT_FRAMES)
        return self.window.at(equivalents) + self._host(len(frames))

    def _host(self, items: int) -> float:
        return self.host_step_s + self.host_item_s * items


COSTS_DIR = Path(__file__).resolve().parent / "costs"


def load_tables(names: Sequence[str]) -> list[CostTable]:
    """Tables by name (``h100-measured``) or path."""
    tables = []
    for name in names:
        path = Path(name) if name.endswith(".json") else COSTS_DIR / f"{name}.json"
        tables.append(CostTable.load(path))
    return tables
