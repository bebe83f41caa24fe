"""A client that records everything a voxwire server sends, for tests, benchmarks and scripts.

It speaks protocol v1 through ``voxwire.protocol`` over a real ``websockets`` connection and keeps each
stream's chunks, ``done`` and errors; ``until`` waits for a frame that matches a predicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from voxwire.protocol import (
    Chunk,
    ClientFrame,
    Done,
    Encoding,
    Error,
    Hello,
    ServerFrame,
    Start,
    decode_server,
    encode,
)

RECV_TIMEOUT_S = 120.0


@dataclass
class StreamResult:
    chunks: list[Chunk] = field(default_factory=list)
    done: Done | None = None
    errors: list[Error] = field(default_factory=list)

    def pcm(self) -> np.ndarray:
        """The stream's audio so far, for PCM16 chunks (the default encoding)."""
        if any(c.encoding not in (None, Encoding.PCM16) for c in self.chunks):
            raise ValueError("pcm() reads PCM16 chunks only; read chunk.audio for other encodings")
        return (
            np.concatenate([np.frombuffer(c.audio, "<i2") for c in self.chunks])
            if self.chunks
            else np.zeros(0)
        )


class RecordingClient:
    def __init__(self, ws: ClientConnection, hello: Hello) -> None:
        self.ws = ws
        self.hello = hello
        self.results: dict[str, StreamResult] = {}
        self.loose_errors: list[Error] = []
        self.frames: list[ServerFrame] = []

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RecordingClient:
        """Connect (``kwargs`` go to ``websockets.connect``) and read the server's ``hello``."""
        ws = await connect(url, max_size=None, **kwargs)
        hello = decode_server(await ws.recv())
        if not isinstance(hello, Hello):
            await ws.close()
            raise ConnectionError(f"the server's first frame was not hello: {hello}")
        return cls(ws, hello)

    async def send(self, frame: ClientFrame) -> None:
        if isinstance(frame, Start):
            # A reused id starts a fresh result; a stray chunk of the old stream would break its seq order.
            self.results[frame.stream] = StreamResult()
        await self.ws.send(encode(frame))

    async def recv(self) -> ServerFrame:
        data = await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT_S)
        frame = decode_server(data)
        self.frames.append(frame)
        if isinstance(frame, Chunk | Done):
            result = self.results.setdefault(frame.stream, StreamResult())
            if isinstance(frame, Chunk):
                if result.done is not None:
                    raise AssertionError(f"chunk after done for stream {frame.stream!r}")
                result.chunks.append(frame)
            else:
                result.done = frame
        elif isinstance(frame, Error):
            if frame.stream is not None:
                self.results.setdefault(frame.stream, StreamResult()).errors.append(frame)
            else:
                self.loose_errors.append(frame)
        return frame

    async def until(self, predicate: Callable[[ServerFrame], bool]) -> ServerFrame:
        while True:
            frame = await self.recv()
            if predicate(frame):
                return frame

    async def until_done(self, stream: str) -> StreamResult:
        result = self.results.get(stream)
        if result is None or result.done is None:
            await self.until(lambda f: isinstance(f, Done) and f.stream == stream)
        return self.results[stream]

    async def error(self) -> Error:
        frame = await self.until(lambda f: isinstance(f, Error))
        if not isinstance(frame, Error):
            raise AssertionError(frame)
        return frame

    async def close(self) -> None:
        await self.ws.close()
