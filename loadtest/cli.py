"""`voxwire loadtest`: drive a voxwire server with many concurrent streams and report what it did."""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from voxwire.protocol import Pace

from .config import LoadConfig, TokenPlacement
from .corpus import BUILTIN_REPLIES, read_texts
from .runner import run_load

DESCRIPTION = """\
Open N concurrent streams against a voxwire server, ramped up linearly. Each
speaks one reply after another the way an LLM writes it (small tokens at
--token-rate per second), optionally barging in with cancel. Measures first
audio, inter-chunk gaps, underruns of a simulated client jitter buffer and
cancel-to-done, checks every stream against the protocol's guarantees, and
prints a table.

It only ever connects to the --url given: no proxy is used, whatever the
environment says.
"""

EPILOG = """\
The duration counts from the start of the run, ramp included; streams in
flight when it ends may finish for up to --grace seconds more. Percentiles
are nearest-rank.

exit status: 0 when the run finished, 1 when the server broke a protocol
guarantee, 2 for bad arguments.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxwire loadtest",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--url", required=True, help="the server's WebSocket URL, e.g. ws://127.0.0.1:8000/v1/ws")
    add("--streams", type=int, required=True, metavar="N", help="concurrent streams")
    add("--ramp", type=float, default=0.0, metavar="SECONDS", help="ramp-up time to N streams (default 0)")
    add("--duration", type=float, required=True, metavar="SECONDS", help="run time, ramp included")
    add("--procs", type=int, default=1, metavar="P", help="worker processes (default 1)")
    add("--streams-per-conn", type=int, default=1, metavar="K", help="streams per connection (default 1)")
    add(
        "--text",
        type=Path,
        metavar="FILE",
        help="replies to speak: one per line, or paragraphs separated by blank lines "
        f"(default: {len(BUILTIN_REPLIES)} built-in assistant replies)",
    )
    add("--token-rate", type=float, default=30.0, metavar="TPS", help="text tokens per second (default 30)")
    add(
        "--cancel-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of streams to cancel (default 0)",
    )
    add(
        "--jitter-ms",
        type=float,
        default=100.0,
        metavar="MS",
        help="simulated client jitter buffer (default 100)",
    )
    add("--json", type=Path, metavar="FILE", help="also write the figures (and per-stream records) as JSON")
    add("--token", metavar="T", help="auth token")
    add(
        "--token-in",
        choices=[placement.value for placement in TokenPlacement],
        default=TokenPlacement.HEADER.value,
        help="send the token as an Authorization: Bearer header or a ?token= query (default header)",
    )
    add("--seed", type=int, default=0, metavar="S", help="seed of the replies, token sizes and cancels")
    add("--sample-rate", type=int, metavar="R", help="sample rate to ask for (default: the voice's)")
    add("--voice", help="voice to ask for (default: the server's)")
    add(
        "--pace",
        choices=[pace.value for pace in Pace],
        help="start.pace of every stream: realtime (paced to playback) or asap (default: the server's)",
    )
    add(
        "--grace", type=float, default=10.0, metavar="SECONDS", help="wait for streams in flight (default 10)"
    )
    add(
        "--stream-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up a stream after this long without a frame for it (default 30)",
    )
    add("--quiet", action="store_true", help="no progress line on stderr")
    return parser


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    """The run the parsed arguments describe; ValueError names what is wrong."""
    texts = read_texts(args.text) if args.text is not None else BUILTIN_REPLIES
    return LoadConfig(
        url=args.url,
        streams=args.streams,
        duration_s=args.duration,
        ramp_s=args.ramp,
        procs=args.procs,
        streams_per_conn=args.streams_per_conn,
        texts=texts,
        token_rate=args.token_rate,
        cancel_rate=args.cancel_rate,
        jitter_ms=args.jitter_ms,
        token=args.token,
        token_placement=TokenPlacement(args.token_in),
        seed=args.seed,
        sample_rate=args.sample_rate,
        voice=args.voice,
        pace=None if args.pace is None else Pace(args.pace),
        grace_s=args.grace,
        stream_timeout_s=args.stream_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    report = asyncio.run(run_load(config, progress=None if args.quiet else sys.stderr))
    print(report.to_table())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 1 if report.violations else 0
