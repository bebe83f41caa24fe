"""The report's figures, table and JSON from hand-made raw results; the progress line."""

import io
import json
from collections import Counter
from typing import Any

import pytest

from voxwire.loadtest.config import LoadConfig
from voxwire.loadtest.progress import ProgressBoard, ProgressSnapshot
from voxwire.loadtest.report import RECORDS_IN_JSON_LIMIT, LoadReport
from voxwire.loadtest.results import Outcome, RunResult, StreamRecord

CONFIG = LoadConfig(url="ws://127.0.0.1:9/v1/ws", streams=4, duration_s=10, token="secret-token")


def record(**fields: Any) -> StreamRecord:
    """A completed stream record of 1 s of audio at 1000 Hz, with `fields` replaced."""
    values: dict[str, Any] = {
        "stream": "0-0",
        "slot": 0,
        "connection": 0,
        "outcome": Outcome.COMPLETE,
        "text_chars": 20,
        "tokens": 6,
        "started_s": 0.0,
        "first_audio_ms": 100.0,
        "chunks": 2,
        "samples": 1000,
        "sample_rate": 1000,
        "gaps_ms": [50.0],
        "underruns": 0,
        "stall_ms": 0.0,
        "cancelled_by_client": False,
        "cancel_to_done_ms": None,
        "server_ttfa_ms": None,
    }
    return StreamRecord(**(values | fields))


def sample_result() -> RunResult:
    records = [
        record(first_audio_ms=100.0, gaps_ms=[10.0, 20.0]),
        record(
            first_audio_ms=300.0,
            gaps_ms=[30.0],
            underruns=2,
            stall_ms=250.0,
            underruns_text=1,
            underruns_server=1,
        ),
        record(
            outcome=Outcome.CANCELLED,
            first_audio_ms=200.0,
            gaps_ms=[],
            cancelled_by_client=True,
            cancel_to_done_ms=15.0,
            samples=500,
        ),
        record(
            outcome=Outcome.ERROR, first_audio_ms=None, gaps_ms=[], samples=0, chunks=0, errors=["overloaded"]
        ),
        record(outcome=Outcome.UNFINISHED, first_audio_ms=None, gaps_ms=[], samples=0, chunks=0),
    ]
    return RunResult(
        records=records,
        errors=Counter({"overloaded": 1, "client:http_401": 2}),
        violations=Counter({"seq_gap": 1}),
        connections_opened=3,
        wall_s=2.0,
        server="voxwire/0.1.0",
    )


def test_figures_come_from_the_records():
    report = LoadReport.from_result(CONFIG, sample_result())
    assert report.outcomes == {"complete": 2, "cancelled": 1, "error": 1, "unfinished": 1, "retried": 0}
    assert report.cancels_sent == 1
    assert (report.first_audio_ms.count, report.first_audio_ms.p50, report.first_audio_ms.max) == (
        3,
        200.0,
        300.0,
    )
    assert (report.gap_ms.count, report.gap_ms.p50, report.gap_ms.p99) == (3, 20.0, 30.0)
    assert (report.underruns, report.streams_with_underruns, report.stall_ms) == (2, 1, 250.0)
    assert (report.underruns_text, report.underruns_server, report.underruns_unknown) == (1, 1, 0)
    assert (report.cancel_to_done_ms.count, report.cancel_to_done_ms.p50) == (1, 15.0)
    assert report.audio_s == pytest.approx(2.5)
    assert report.x_real_time == pytest.approx(1.25)
    assert report.violations == 1


def test_table_shows_every_figure():
    table = LoadReport.from_result(CONFIG, sample_result()).to_table()
    lines = dict(line.split("  ", 1) for line in table.splitlines() if not line.startswith("  "))
    figures = {name.strip(): value.strip() for name, value in lines.items()}
    assert figures["server"] == "ws://127.0.0.1:9/v1/ws (voxwire/0.1.0)"
    assert figures["streams started"] == "5"
    assert figures["first audio (ms)"] == "p50 200.0  p95 300.0  p99 300.0  max 300.0  (n=3)"
    assert figures["inter-chunk gap (ms)"] == "p50 20.0  p99 30.0  max 30.0  (n=3)"
    assert figures["underruns"] == (
        "2 in 1 streams (text pace: 1, server: 1; stall 0.25 s, jitter buffer 100 ms)"
    )
    assert figures["cancel to done (ms)"] == "p50 15.0  p99 15.0  max 15.0  (n=1)"
    assert figures["errors"] == "client:http_401 2, overloaded 1"
    assert figures["protocol violations"] == "seq_gap 1"
    assert figures["x real time"] == "1.25"
    assert "  completed" in table and "  unfinished" in table


def test_table_of_an_empty_run_has_dashes_not_numbers():
    table = LoadReport.from_result(CONFIG, RunResult()).to_table()
    assert "first audio (ms)      -" in table
    assert "errors                none" in table
    assert "no hello received" in table


def test_json_holds_the_figures_and_records_but_not_the_token():
    figures = LoadReport.from_result(CONFIG, sample_result()).to_dict()
    decoded = json.loads(json.dumps(figures))
    assert decoded["streams"] == {
        "started": 5,
        "complete": 2,
        "cancelled": 1,
        "error": 1,
        "unfinished": 1,
        "retried": 0,
        "cancels_sent": 1,
    }
    assert decoded["first_audio_ms"] == {"count": 3, "p50": 200.0, "p95": 300.0, "p99": 300.0, "max": 300.0}
    assert decoded["errors"] == {"client:http_401": 2, "overloaded": 1}
    assert decoded["underruns"] == {
        "count": 2,
        "streams": 1,
        "text_pace": 1,
        "server": 1,
        "unknown": 0,
        "stall_ms": 250.0,
    }
    assert decoded["percentiles"] == "nearest-rank"
    assert decoded["config"]["token_set"] is True
    assert "secret-token" not in json.dumps(figures)
    assert [r["outcome"] for r in decoded["records"]] == [
        "complete",
        "complete",
        "cancelled",
        "error",
        "unfinished",
    ]


def test_json_leaves_out_the_records_of_a_large_run():
    result = RunResult(records=[record() for _ in range(RECORDS_IN_JSON_LIMIT + 1)], wall_s=1.0)
    figures = LoadReport.from_result(CONFIG, result).to_dict()
    assert "records" not in figures
    assert figures["streams"]["started"] == RECORDS_IN_JSON_LIMIT + 1


def test_progress_sums_processes_and_writes_plain_lines_when_not_a_tty():
    out = io.StringIO()
    board = ProgressBoard(out)
    board.update(
        0, ProgressSnapshot(1.0, active=3, finished=4, errors=1, underruns=2, new_first_audio_ms=(10.0,))
    )
    board.update(1, ProgressSnapshot(1.1, active=2, finished=1, errors=0, underruns=0, new_first_audio_ms=()))
    board.update(
        1, ProgressSnapshot(2.0, active=1, finished=5, errors=0, underruns=1, new_first_audio_ms=(30.0, 40.0))
    )
    board.finish()
    assert out.getvalue() == "[    2.0s] active 4  done 9  errors 1  first-audio p50 30 ms  underruns 3\n"


def test_progress_rewrites_one_line_on_a_tty():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    board = ProgressBoard(out)
    board.render(force=True)
    board.finish()
    line = "[    0.0s] active 0  done 0  errors 0  first-audio p50 -  underruns 0"
    assert out.getvalue() == f"\r\x1b[K{line}\r\x1b[K{line}\n"


def test_underruns_of_unknown_cause_show_only_when_there_are_some():
    result = RunResult(records=[record(underruns=3, stall_ms=90.0, underruns_server=1, underruns_unknown=2)])
    table = LoadReport.from_result(CONFIG, result).to_table()
    assert "3 in 1 streams (text pace: 0, server: 1, unknown: 2; stall 0.09 s" in table
