"""Percentiles, by one definition used everywhere in the load generator: nearest rank.

The q-th percentile (0 < q <= 100) of n values is the value at 1-based rank ceil(q / 100 * n) in ascending
order; the 0th is the smallest. It is always one of the observed values (no interpolation), so p99 of fewer
than 100 values is the maximum, and p50 of an even count is the lower of the two middle values.
Percentiles are computed from the raw values of a whole run, never merged from partial percentiles.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank q-th percentile of `values`, or None when there are none."""
    return percentile_of_sorted(sorted(values), q)


def percentile_of_sorted(ordered: Sequence[float], q: float) -> float | None:
    """`percentile` for values already sorted ascending (to take several percentiles of one sort)."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Distribution:
    """Count and nearest-rank percentiles of a set of values; the percentiles are None when count is 0."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> "Distribution":
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=percentile_of_sorted(ordered, 50),
            p95=percentile_of_sorted(ordered, 95),
            p99=percentile_of_sorted(ordered, 99),
            max=ordered[-1] if ordered else None,
        )
