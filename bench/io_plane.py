"""The I/O plane's CPU cost: per incoming text frame and per outgoing chunk, through the real server code.

The real Starlette app (``server/app.py``: the WebSocket route, ``Connection``, ``StreamSession``, the
segmenter, the outbox, the codec, the engine worker's loop-thread half) runs in this process over an
in-memory ASGI transport, with a null voice: sentences become latents of a chosen length at once, windows
become zeros. The event-loop thread's CPU time (``time.thread_time``) is what is measured; the engine
thread's is not. The client side is a queue of pre-encoded frames and a callback that counts what comes
back (decoding only the small frames, to see each ``done``): next to nothing.

Two runs separate the two costs: a *text* run (many text frames, one tiny chunk per segment) and an *audio*
run (one text frame, a long sentence: many chunks); each run's share of the other cost is taken out with
the other's figure. An *audio* run at 48 kHz adds soxr resampling. What uvicorn adds per frame under a real
socket is measured apart: the websockets sans-I/O framing (parse a masked client frame; frame a chunk) and a
``send`` on a local socket.

    python bench/io_plane.py [--streams 200] [--tokens 300] [--audio-s 30]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import socket
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch
from starlette.applications import Starlette
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from voxwire.engine.build import VoiceLoader
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.phonemes import Phonemized
from voxwire.engine.voice import VoiceInfo
from voxwire.engine.windows import WindowSpec
from voxwire.engine.work import Piece
from voxwire.loadtest.corpus import BUILTIN_REPLIES
from voxwire.loadtest.tokens import split_tokens
from voxwire.protocol import Done, Start, Text, decode_server, encode
from voxwire.server.app import create_app
from voxwire.server.settings import Settings

RATE = 22050
HOP = 256
SPEECH_CHARS_PER_S = 15.9
"""The bundled voice's speaking rate (bench/sim_engine.py's FRAMES_PER_CHAR, in characters a second)."""


class NullVoice:
    """A voice that costs nothing: ``frames_per_char`` latent frames per character, zeros for audio."""

    def __init__(self, frames_per_char: float) -> None:
        self.info = VoiceInfo("null", "en_US", RATE)
        self.default_params = SynthesisParams(0.667, 0.8, 1.0)
        self.hop_length = HOP
        self.window_sizes = (16, 32, 64, 128)
        self.frames_per_char = frames_per_char
        self._zeros: dict[int, np.ndarray] = {}

    def phonemize(self, text: str) -> Phonemized:
        return Phonemized([[1] * len(text)])

    def pieces(self, text: str, offset: int = 0) -> tuple[list[Piece], frozenset[str]]:
        return [Piece(tuple(ids)) for ids in self.phonemize(text).sentences], frozenset()

    def encode(
        self, ids: list[list[int]], params: list[SynthesisParams], generator: Any = None
    ) -> list[Latent]:
        latents = []
        for sentence in ids:
            zeros = torch.zeros(1, max(1, round(self.frames_per_char * len(sentence))))
            latents.append(Latent(zeros, zeros, torch.zeros(0, dtype=torch.long), zeros.shape[-1]))
        return latents

    def decode_windows(self, jobs: list[tuple[Latent, WindowSpec]]) -> list[np.ndarray]:
        out = []
        for _, spec in jobs:
            samples = spec.frames * HOP
            block = self._zeros.get(samples)
            if block is None:
                block = self._zeros[samples] = np.zeros(samples, np.int16)
            out.append(block)
        return out

    def warm_up(self, rounds: int = 3) -> None:
        """Nothing to warm."""


@dataclass(frozen=True)
class Run:
    text_frames: int
    chunks: int
    audio_s: float
    loop_cpu_s: float
    wall_s: float


async def serve(
    streams: int, frames: Callable[[int], list[bytes]], frames_per_char: float, sample_rate: int | None
) -> Run:
    """``streams`` connections of one stream each, fed ``frames(i)`` at once; the loop thread's CPU time
    from the first frame to the last ``done``."""
    settings = Settings(
        device="cpu", voices=("null",), workers=1, max_batch=64, max_ahead_ms=10**9,
        max_connections=streams + 1, max_buffered_audio_ms=10**9,
    )  # fmt: skip
    # The null voice has every method of Voice that the server and the engine call.
    app = create_app(settings, load=cast(VoiceLoader, lambda spec, config: NullVoice(frames_per_char)))
    done = asyncio.Event()
    counts = {"done": 0, "chunks": 0, "bytes": 0}

    async def send(message: MutableMapping[str, Any]) -> None:
        data = message.get("bytes")
        if data is None:
            return
        if len(data) > 300:
            counts["chunks"] += 1
            counts["bytes"] += len(data)
        elif isinstance(decode_server(data), Done):
            counts["done"] += 1
            if counts["done"] == streams:
                done.set()

    async with app.router.lifespan_context(app):
        await wait_ready(app)
        inboxes = []
        for index in range(streams):
            inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            inbox.put_nowait({"type": "websocket.connect"})
            inboxes.append((inbox, frames(index)))
        text_frames = sum(len(f) - 1 for _, f in inboxes)  # all but the start
        if sample_rate is not None:
            inboxes = [(inbox, [encode(replace(_start(i), sample_rate=sample_rate)), *f[1:]])
                       for i, (inbox, f) in enumerate(inboxes)]  # fmt: skip
        started_cpu, started = time.thread_time(), time.perf_counter()
        tasks = []
        for inbox, client_frames in inboxes:
            for frame in client_frames:
                inbox.put_nowait({"type": "websocket.receive", "bytes": frame})
            scope = {"type": "websocket", "path": "/v1/ws", "headers": [(b"host", b"bench")],
                     "query_string": b"", "subprotocols": [], "app": app}  # fmt: skip
            tasks.append(asyncio.create_task(app(scope, inbox.get, send)))
        await done.wait()
        cpu, wall = time.thread_time() - started_cpu, time.perf_counter() - started
        for inbox, _ in inboxes:
            inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.gather(*tasks)
    audio_s = counts["bytes"] / 2 / (sample_rate or RATE)  # the frames' headers count as audio: < 0.2 %
    return Run(text_frames, counts["chunks"], audio_s, cpu, wall)


async def wait_ready(app: Starlette) -> None:
    """The voices load in the background (a bench may poll; the null voice loads at once)."""
    for _ in range(1000):
        if app.state.hub.ready:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("the server did not get ready")


def _start(index: int) -> Start:
    return Start(stream=f"s{index}")


def text_frames(index: int) -> list[bytes]:
    """A stream as the load tester sends it: three replies' tokens, the last one final."""
    rng = random.Random(index)
    text = " ".join(rng.choice(BUILTIN_REPLIES) for _ in range(3))
    tokens = split_tokens(text, rng)
    stream = _start(index).stream
    body = [encode(Text(stream, token, final=n == len(tokens) - 1)) for n, token in enumerate(tokens)]
    return [encode(_start(index)), *body]


def audio_frames(index: int) -> list[bytes]:
    stream = _start(index).stream
    return [encode(_start(index)), encode(Text(stream, "A long sentence to speak.", final=True))]


def framing_costs(chunk_bytes: int, rounds: int = 20000) -> dict[str, float]:
    """What uvicorn's websockets transport adds, in µs: parse one masked client text frame, frame one
    chunk, and ``send`` it on a local socket."""
    token = encode(Text("s0", " hel"))
    masked = Frame(Opcode.BINARY, token).serialize(mask=True)
    server = Protocol(Side.SERVER)
    started = time.thread_time()
    for _ in range(rounds):
        server.receive_data(masked)
        server.events_received()
    parse_us = (time.thread_time() - started) / rounds * 1e6
    chunk = bytes(chunk_bytes)
    started = time.thread_time()
    for _ in range(rounds):
        server.send_binary(chunk)
        server.data_to_send()
    frame_us = (time.thread_time() - started) / rounds * 1e6
    left, right = socket.socketpair()
    right.setblocking(False)
    sent_s = 0.0
    for _ in range(rounds // 10):
        started = time.thread_time()
        left.send(chunk)
        sent_s += time.thread_time() - started
        while True:
            try:
                right.recv(1 << 20)
            except BlockingIOError:
                break
    left.close()
    right.close()
    return {"parse_us": parse_us, "frame_us": frame_us, "send_us": sent_s / (rounds // 10) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--audio-s", type=float, default=30.0, help="audio per stream in the audio run")
    args = parser.parse_args()
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    audio_fpc = args.audio_s * RATE / HOP / len("A long sentence to speak.")
    text = asyncio.run(serve(args.streams, text_frames, 0.0, None))
    audio = asyncio.run(serve(args.streams, audio_frames, audio_fpc, None))
    resampled = asyncio.run(serve(args.streams, audio_frames, audio_fpc, 48000))
    # Each run's share of the other cost out, by the other run's figure (two rounds settle it).
    per_audio_s = audio.loop_cpu_s / audio.audio_s
    for _ in range(2):
        per_text = (text.loop_cpu_s - per_audio_s * text.audio_s) / text.text_frames
        per_audio_s = (audio.loop_cpu_s - per_text * audio.text_frames) / audio.audio_s
    per_audio_s_48k = (resampled.loop_cpu_s - per_text * resampled.text_frames) / resampled.audio_s
    chunks_per_s = audio.chunks / audio.audio_s
    wire = framing_costs(round(2 * RATE / chunks_per_s))
    print("| run | text frames | chunks | audio s | loop CPU s | wall s |\n|---|---|---|---|---|---|")
    for name, run in (("text", text), ("audio", audio), ("audio at 48 kHz", resampled)):
        print(
            f"| {name} | {run.text_frames:,} | {run.chunks:,} | {run.audio_s:,.0f} | {run.loop_cpu_s:.2f} "
            f"| {run.wall_s:.2f} |"
        )
    text_us = per_text * 1e6 + wire["parse_us"]
    wire_us = (wire["frame_us"] + wire["send_us"]) * chunks_per_s
    audio_us = per_audio_s * 1e6 + wire_us
    audio_48k_us = per_audio_s_48k * 1e6 + wire_us * 48000 / RATE
    print(
        f"\nper text frame: {per_text * 1e6:.1f} µs in the app + {wire['parse_us']:.1f} µs websockets parse"
        f" = {text_us:.1f} µs"
        f"\nper second of audio ({chunks_per_s:.2f} chunks): {per_audio_s * 1e6:.0f} µs in the app "
        f"+ {wire_us:.0f} µs websockets framing and socket send = {audio_us:.0f} µs; "
        f"resampled to 48 kHz: {audio_48k_us:.0f} µs"
        f"\nper chunk: {audio_us / chunks_per_s:.0f} µs ({audio_48k_us / chunks_per_s:.0f} µs at 48 kHz)"
    )
    tokens = sum(len(split_tokens(t, random.Random(0))) for t in BUILTIN_REPLIES)
    chars = sum(len(t) for t in BUILTIN_REPLIES)
    steady_tokens = SPEECH_CHARS_PER_S * tokens / chars  # text at the speed it is spoken, on average
    print(
        f"\nextrapolated: cores of this machine that the loop thread needs; each stream hears 1 s of audio a "
        f"second and sends text at 60 tokens/s (all at once: the worst case) or, on average, as fast as it "
        f"is spoken ({steady_tokens:.1f} tokens/s)"
    )
    print("| streams | all at 60 tokens/s | text at speaking rate | same at 48 kHz |\n|---|---|---|---|")
    for streams in (100, 1000, 2000):
        burst = streams * (60 * text_us + audio_us) / 1e6
        steady = streams * (steady_tokens * text_us + audio_us) / 1e6
        steady_48k = streams * (steady_tokens * text_us + audio_48k_us) / 1e6
        print(f"| {streams:,} | {burst:.2f} | {steady:.2f} | {steady_48k:.2f} |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
