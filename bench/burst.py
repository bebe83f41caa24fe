"""A burst of starts: N clients begin a reply at the same instant, round after round; first audio by rank,
and whether the streams already playing run dry meanwhile.

Each round, ``--clients`` connections each start a stream (``--pace``) and send a two-sentence reply (the
replies of ``bench/versus_piper.py``) as one ``text`` frame with ``final``, at once; the round ends when
every reply is done, and the next begins ``--idle`` seconds later. Per rank (the first, second, ... first
audio of a round), the median, min and max over the rounds of the time from a client's ``text`` frame to its
first ``chunk``. On a CPU the ranks show the engine's cost per first audio (the workers take the starts
in turn); the p95 of a round of ``bench/versus_piper.py`` at 8 clients is about the third-worst rank here.
Each stream's chunks are played as they arrive (``voxwire.loadtest.playback``) with no jitter buffer and
with 100 ms (the browser client's default): streams that ran dry, and their mean stall. A start refused
(``overloaded``) or failed is counted as such, never timed.

    python bench/burst.py [--clients 8] [--rounds 12] [--idle 0.5] [--pace realtime]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass

from capacity import machine, pct, replies_of  # bench/capacity.py, beside this script

from voxwire.loadtest.playback import ChunkArrival, Playback, simulate_playback
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Done, Error, Pace, Start, Text
from voxwire.server.process import ServerProcess

REPLIES = replies_of(2)
JITTER_S = (0.0, 0.1)
"""The jitter buffers each stream is played through: none, and the browser client's default."""


@dataclass(frozen=True)
class Started:
    first_audio_ms: float
    playbacks: tuple[Playback, ...]
    """One per ``JITTER_S``."""


async def one_start(url: str, client: int, round_: int, pace: Pace) -> Started | None:
    """One client's reply: its first audio and how it played; None when it was refused or failed."""
    connection = await RecordingClient.open(url)
    try:
        stream = f"r{round_}-{client}"
        await connection.send(Start(stream=stream, pace=pace))
        started = time.perf_counter()
        text = REPLIES[(client + round_) % len(REPLIES)]
        await connection.send(Text(stream=stream, text=text, final=True))
        arrivals: list[ChunkArrival] = []
        while not isinstance(frame := await connection.recv(), Done | Error) or frame.stream != stream:
            if isinstance(frame, Chunk) and frame.stream == stream:
                at = time.perf_counter() - started
                arrivals.append(ChunkArrival(at, frame.offset, len(frame.audio) // frame.sample_bytes))
        if not arrivals or isinstance(frame, Error) or frame.reason != "complete":
            return None
        rate = connection.hello.voices[0].sample_rate
        playbacks = tuple(simulate_playback(arrivals, rate, jitter) for jitter in JITTER_S)
        return Started(arrivals[0].at * 1000, playbacks)
    finally:
        await connection.close()


async def rounds(url: str, clients: int, count: int, idle_s: float, pace: Pace) -> list[list[Started | None]]:
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
    timed = [sorted(s.first_audio_ms for s in result if s is not None) for result in results]
    refused = sum(s is None for result in results for s in result)
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
    served = [s for result in results for s in result if s is not None]
    for index, jitter in enumerate(JITTER_S):
        dry = [s.playbacks[index] for s in served if s.playbacks[index].underruns]
        stall_ms = statistics.mean(p.stall_s for p in dry) * 1000 if dry else 0.0
        print(
            f"played with a {jitter * 1000:.0f} ms jitter buffer: {len(dry)} of {len(served)} streams "
            f"ran dry, {stall_ms:.0f} ms of stall on average in those"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
