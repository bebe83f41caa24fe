"""A burst of starts: N clients begin a reply at the same instant, round after round; first audio by rank.

Each round, ``--clients`` connections each start a stream (``--pace``) and send a two-sentence reply (the
replies of ``bench/versus_piper.py``) as one ``text`` frame with ``final``, at once; the round ends when
every reply is done, and the next begins ``--idle`` seconds later. Per rank (the first, second, ... first
audio of a round), the median, min and max over the rounds of the time from a client's ``text`` frame to its
first ``chunk``. On a CPU the ranks show the engine's cost per first audio (the workers take the starts
in turn); the p95 of a round of ``bench/versus_piper.py`` at 8 clients is about the third-worst rank here.
A start refused (``overloaded``) or failed is counted as such, never timed.

    python bench/burst.py [--clients 8] [--rounds 12] [--idle 0.5] [--pace realtime]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from capacity import machine, pct, replies_of  # bench/capacity.py, beside this script

from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Done, Error, Pace, Start, Text
from voxwire.server.process import ServerProcess

REPLIES = replies_of(2)


async def one_start(url: str, client: int, round_: int, pace: Pace) -> float | None:
    """First audio in ms of one client's reply; None when the stream was refused or failed."""
    connection = await RecordingClient.open(url)
    try:
        stream = f"r{round_}-{client}"
        await connection.send(Start(stream=stream, pace=pace))
        started = time.perf_counter()
        text = REPLIES[(client + round_) % len(REPLIES)]
        await connection.send(Text(stream=stream, text=text, final=True))
        first = await connection.until(lambda f: isinstance(f, Chunk | Done | Error) and f.stream == stream)
        if not isinstance(first, Chunk):
            return None
        elapsed_ms = (time.perf_counter() - started) * 1000
        await connection.until_done(stream)
        return elapsed_ms
    finally:
        await connection.close()


async def rounds(url: str, clients: int, count: int, idle_s: float, pace: Pace) -> list[list[float | None]]:
    results = []
    for round_ in range(count):
        await asyncio.sleep(idle_s)
        results.append(list(await asyncio.gather(*(one_start(url, c, round_, pace) for c in range(clients)))))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--idle", type=float, default=0.5, help="seconds between rounds")
    parser.add_argument("--pace", choices=[p.value for p in Pace], default="realtime")
    args = parser.parse_args()
    header = f"# burst: {machine()}"
    with ServerProcess("--max-asap-streams", str(args.clients)) as server:
        asyncio.run(rounds(server.ws_url, 2, 1, 0.0, Pace.REALTIME))  # warm-up
        results = asyncio.run(rounds(server.ws_url, args.clients, args.rounds, args.idle, Pace(args.pace)))
    print(f"{header}; load average at the end {os.getloadavg()[0]:.2f}")
    print(
        f"# {args.clients} clients start a {args.pace} reply at once; "
        f"{args.rounds} rounds, {args.idle:g} s apart\n"
    )
    timed = [sorted(ms for ms in result if ms is not None) for result in results]
    refused = sum(ms is None for result in results for ms in result)
    print("| rank | first audio median ms | min | max |")
    print("|---|---|---|---|")
    for rank in range(args.clients):
        at_rank = [result[rank] for result in timed if len(result) > rank]
        if at_rank:
            print(
                f"| {rank + 1} | {statistics.median(at_rank):.0f} | {min(at_rank):.0f} | {max(at_rank):.0f} |"
            )
    every = [ms for result in timed for ms in result]
    print(
        f"\nfirst audio over all starts: p50 {pct(every, 50):.0f} ms, p95 {pct(every, 95):.0f} ms; "
        f"refused or failed: {refused} of {args.clients * args.rounds}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
