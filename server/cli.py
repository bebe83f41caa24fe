"""The ``voxwire`` command: ``serve`` (the server), ``say`` (speak to a WAV file), ``loadtest``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from voxwire.protocol import Pace
from voxwire.server.settings import add_arguments, build_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxwire", description="Realtime voice over WebSocket.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the WebSocket server")
    add_arguments(serve)
    say = commands.add_parser("say", help="speak text into a WAV file with the bundled voice")
    say.add_argument("text")
    say.add_argument("-o", "--output", type=Path, default=Path("out.wav"))
    say.add_argument("--voice", help="the voice (default: joe, or the server's default voice)")
    say.add_argument("--device", default="auto")
    say.add_argument("--stream", action="store_true", help="print per-window timings as audio is made")
    say.add_argument("--server", metavar="URL", help="speak through a running server (ws://host:port/v1/ws)")
    say.add_argument(
        "--pace",
        choices=[pace.value for pace in Pace],
        default=Pace.ASAP.value,
        help="with --server, the stream's start.pace (default asap: a file needs no pacing); "
        "without it, the local engine makes the audio as fast as it can",
    )
    commands.add_parser("loadtest", help="drive a voxwire server with many streams", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["loadtest"]:
        from voxwire.loadtest.cli import main as loadtest_main

        return loadtest_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from voxwire.server.run import serve

        try:
            settings = build_settings(args)
        except ValueError as error:
            print(f"voxwire serve: {error}", file=sys.stderr)
            return 2
        return serve(settings)
    if args.server is not None:
        from voxwire.loadtest.say import say_through

        try:
            pace = Pace(args.pace)
            asyncio.run(say_through(args.server, args.text, args.output, pace=pace, voice=args.voice))
        except (OSError, RuntimeError) as error:
            print(f"voxwire say: {error}", file=sys.stderr)
            return 1
        return 0
    from voxwire.engine.say import say

    say(args.text, args.output, voice=args.voice or "joe", device=args.device, stream=args.stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
