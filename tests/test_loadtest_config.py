"""Load run settings: validation, the layout of slots over connections and processes, the CLI's mapping."""

import pytest

from voxwire.loadtest.cli import build_parser, config_from_args
from voxwire.loadtest.config import ConnectionPlan, LoadConfig, TokenPlacement, plan_connections
from voxwire.loadtest.corpus import BUILTIN_REPLIES
from voxwire.protocol import Pace

URL = "ws://127.0.0.1:8000/v1/ws"


def test_slots_fill_connections_k_at_a_time_and_ramp_linearly():
    config = LoadConfig(url=URL, streams=5, streams_per_conn=2, ramp_s=10.0, duration_s=20.0)
    assert config.connections == 3
    assert plan_connections(config) == [
        ConnectionPlan(index=0, slots=(0, 1), slot_starts_s=(0.0, 2.0)),
        ConnectionPlan(index=1, slots=(2, 3), slot_starts_s=(4.0, 6.0)),
        ConnectionPlan(index=2, slots=(4,), slot_starts_s=(8.0,)),
    ]


def test_processes_take_connections_in_turn_so_that_they_ramp_together():
    config = LoadConfig(url=URL, streams=6, procs=2, ramp_s=6.0, duration_s=10.0)
    first, second = plan_connections(config, 0), plan_connections(config, 1)
    assert [plan.index for plan in first] == [0, 2, 4]
    assert [plan.index for plan in second] == [1, 3, 5]
    assert [plan.start_s for plan in second] == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError):
        plan_connections(config, 2)


def test_no_more_processes_than_connections():
    config = LoadConfig(url=URL, streams=4, streams_per_conn=4, procs=8)
    assert (config.connections, config.worker_procs) == (1, 1)
    assert [plan.slots for plan in plan_connections(config)] == [(0, 1, 2, 3)]


@pytest.mark.parametrize(
    "changes",
    [
        {"url": "http://127.0.0.1:8000/v1/ws"},
        {"url": "not a url"},
        {"streams": 0},
        {"procs": 0},
        {"streams_per_conn": 0},
        {"duration_s": 0},
        {"ramp_s": -1},
        {"ramp_s": 11.0, "duration_s": 10.0},
        {"token_rate": 0},
        {"cancel_rate": 1.5},
        {"jitter_ms": -1},
        {"grace_s": -1},
        {"stream_timeout_s": 0},
        {"texts": ()},
        {"texts": ("fine", "   ")},
        {"sample_rate": 4000},
    ],
)
def test_bad_settings_are_refused(changes):
    with pytest.raises(ValueError):
        LoadConfig(**{"url": URL} | changes)


def test_cli_arguments_map_onto_the_config(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("One.\nTwo.\n", encoding="utf-8")
    args = build_parser().parse_args(
        [
            *("--url", URL, "--streams", "8", "--ramp", "2", "--duration", "30", "--procs", "2"),
            *(
                "--streams-per-conn",
                "4",
                "--text",
                str(texts),
                "--token-rate",
                "12.5",
                "--cancel-rate",
                "0.25",
            ),
            *("--jitter-ms", "80", "--token", "t0k", "--token-in", "query", "--seed", "9", "--sample-rate"),
            *("16000", "--voice", "joe", "--grace", "3", "--stream-timeout", "7", "--pace", "asap"),
        ]
    )
    assert config_from_args(args) == LoadConfig(
        url=URL,
        streams=8,
        ramp_s=2.0,
        duration_s=30.0,
        procs=2,
        streams_per_conn=4,
        texts=("One.", "Two."),
        token_rate=12.5,
        cancel_rate=0.25,
        jitter_ms=80.0,
        token="t0k",
        token_placement=TokenPlacement.QUERY,
        seed=9,
        sample_rate=16000,
        voice="joe",
        pace=Pace.ASAP,
        grace_s=3.0,
        stream_timeout_s=7.0,
    )


def test_cli_defaults():
    args = build_parser().parse_args(["--url", URL, "--streams", "1", "--duration", "5"])
    config = config_from_args(args)
    assert (config.ramp_s, config.procs, config.streams_per_conn, config.token_rate) == (0.0, 1, 1, 30.0)
    assert (config.cancel_rate, config.jitter_ms, config.token_placement) == (
        0.0,
        100.0,
        TokenPlacement.HEADER,
    )
    assert config.texts == BUILTIN_REPLIES


def test_cli_help_says_it_connects_only_to_the_url_given():
    assert "only ever connects to the --url given" in " ".join(build_parser().format_help().split())
