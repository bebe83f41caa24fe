"""Readiness by capacity: the hysteresis of ``CapacityGate`` and the load it reads (no server)."""

import math

import pytest

from voxwire.server.readiness import NOT_READY_AT, READY_AGAIN_AT, CapacityGate, Load


def test_used_is_streams_over_capacity_and_zero_until_measured():
    assert Load(in_use=3, capacity=6.0).used == 0.5
    assert Load(in_use=50, capacity=math.inf).used == 0.0
    assert Load(in_use=1, capacity=0.4).used == 1.0  # like admission, room for one stream at least


def test_full_at_the_high_mark_and_free_again_only_at_the_low_mark():
    gate = CapacityGate()
    capacity = 10.0
    states = [gate.update(Load(n, capacity)) for n in (0, 5, 8, 9, 10, 9, 8, 7, 6, 8, 9)]
    assert states == [False, False, False, True, True, True, True, False, False, False, True]
    assert (NOT_READY_AT, READY_AGAIN_AT) == (0.9, 0.7)


def test_full_before_admission_would_refuse():
    # Admission refuses once the streams it counts reach the capacity estimate (at least 1); the gate
    # counts every stream the engine holds, which is never fewer, so it closes first.
    for capacity in (0.5, 1.0, 2.5, 5.0, 6.3, 100.0):
        gate = CapacityGate()
        refused_at = math.ceil(max(1.0, capacity))
        full_at = next(n for n in range(1000) if gate.update(Load(n, capacity)))
        assert full_at <= refused_at, capacity


def test_the_marks_must_make_a_band():
    with pytest.raises(ValueError, match="ready_again_at"):
        CapacityGate(not_ready_at=0.7, ready_again_at=0.8)
