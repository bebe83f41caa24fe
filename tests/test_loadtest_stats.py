"""Nearest-rank percentiles against hand-computed values, and merging raw results of worker processes."""

from collections import Counter

import pytest

from tests.test_loadtest_report import record
from voxwire.loadtest.config import LoadConfig
from voxwire.loadtest.report import LoadReport
from voxwire.loadtest.results import Outcome, RunResult, StreamRecord, merge_results
from voxwire.loadtest.stats import Distribution, percentile


@pytest.mark.parametrize(
    ("q", "expected"),
    # n = 5: rank = ceil(q * 5 / 100).
    [(0, 15), (5, 15), (20, 15), (30, 20), (40, 20), (50, 35), (80, 40), (81, 50), (99, 50), (100, 50)],
)
def test_percentile_of_an_odd_count(q, expected):
    assert percentile([35, 50, 15, 40, 20], q) == expected


@pytest.mark.parametrize(
    # n = 4: p50 is rank 2 (the lower middle value, no interpolation), p75 rank 3, p76 rank 4.
    ("q", "expected"),
    [(25, 1.0), (26, 2.5), (50, 2.5), (51, 3.0), (75, 3.0), (76, 10.0), (99, 10.0), (100, 10.0)],
)
def test_percentile_of_an_even_count(q, expected):
    assert percentile([10.0, 1.0, 3.0, 2.5], q) == expected


def test_percentile_of_a_hundred_values_is_the_value_at_that_rank():
    values = list(range(1, 101))
    assert [percentile(values, q) for q in (1, 50, 95, 99, 100)] == [1, 50, 95, 99, 100]


@pytest.mark.parametrize("q", [0, 50, 99, 100])
def test_percentile_of_a_single_value_is_that_value(q):
    assert percentile([7.5], q) == 7.5


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None
    assert Distribution.of([]) == Distribution(count=0, p50=None, p95=None, p99=None, max=None)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_outside_0_to_100_is_refused(q):
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_distribution_takes_every_percentile_from_one_sort():
    values = [float(v) for v in range(200, 0, -1)]  # 200 .. 1, unsorted on purpose
    assert Distribution.of(values) == Distribution(count=200, p50=100.0, p95=190.0, p99=198.0, max=200.0)


def worker(first_audio: list[float], errors: dict[str, int], wall_s: float, server: str | None) -> RunResult:
    records = [record(first_audio_ms=value) for value in first_audio]
    return RunResult(
        records=records,
        errors=Counter(errors),
        violations=Counter({"seq_gap": 1}),
        connections_opened=len(records),
        wall_s=wall_s,
        server=server,
    )


def test_merging_keeps_every_raw_value_so_percentiles_come_from_the_whole_run():
    fast = worker([10.0, 11.0, 12.0, 13.0], {"overloaded": 2}, wall_s=5.0, server=None)
    slow = worker([100.0], {"overloaded": 1, "client:connect_failed": 1}, wall_s=5.5, server="voxwire/1")
    merged = merge_results([fast, slow])

    assert [r.first_audio_ms for r in merged.records] == [10.0, 11.0, 12.0, 13.0, 100.0]
    assert merged.errors == Counter({"overloaded": 3, "client:connect_failed": 1})
    assert merged.violations == Counter({"seq_gap": 2})
    assert merged.connections_opened == 5
    assert merged.wall_s == 5.5  # the longest worker's, when the caller gives none
    assert merged.server == "voxwire/1"
    # p50 of all five values is 12; the mean of the workers' p50s (11 and 100) would say 55.5.
    report = LoadReport.from_result(LoadConfig(url="ws://127.0.0.1:1/v1/ws"), merged)
    assert report.first_audio_ms.p50 == 12.0
    assert report.first_audio_ms.max == 100.0
    # Merging does not touch its parts.
    assert len(fast.records) == 4 and fast.errors == Counter({"overloaded": 2})


def test_merging_takes_the_callers_wall_time_and_handles_no_parts():
    assert merge_results([worker([1.0], {}, wall_s=3.0, server=None)], wall_s=4.25).wall_s == 4.25
    empty = merge_results([])
    assert (empty.records, empty.errors, empty.wall_s, empty.server) == ([], Counter(), 0.0, None)


def test_record_audio_seconds_come_from_its_samples_and_rate():
    assert record(samples=44100, sample_rate=22050).audio_s == 2.0
    assert (
        StreamRecord(**{**record().to_dict(), "sample_rate": None, "outcome": Outcome.ERROR}).audio_s == 0.0
    )
