"""A thin test client over a real ``websockets`` connection, speaking protocol v1 through ``protocol/``."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from protocol import Chunk, ClientFrame, Done, Error, Hello, ServerFrame, Start, decode_server, encode

RECV_TIMEOUT_S = 120.0


@dataclass
class StreamResult:
    chunks: list[Chunk] = field(default_factory=list)
    done: Done | None = None
    errors: list[Error] = field(default_factory=list)

    def pcm(self) -> np.ndarray:
        return (
            np.concatenate([np.frombuffer(c.audio, "<i2") for c in self.chunks])
            if self.chunks
            else np.zeros(0)
        )


class Client:
    def __init__(self, ws: ClientConnection, hello: Hello) -> None:
        self.ws = ws
        self.hello = hello
        self.results: dict[str, StreamResult] = {}
        self.loose_errors: list[Error] = []
        self.frames: list[ServerFrame] = []

    @classmethod
    async def open(cls, url: str, **kwargs: object) -> Client:
        ws = await connect(url, max_size=None, **kwargs)  # type: ignore[arg-type]
        hello = decode_server(await ws.recv())
        assert isinstance(hello, Hello), hello
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
                assert result.done is None, f"chunk after done for {frame.stream}"
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
        assert isinstance(frame, Error)
        return frame

    async def close(self) -> None:
        await self.ws.close()


def assert_contiguous(result: StreamResult) -> None:
    """Protocol guarantee 2 and the done counts."""
    assert result.done is not None
    offset = 0
    for seq, chunk in enumerate(result.chunks):
        assert chunk.seq == seq
        assert chunk.offset == offset
        offset += len(chunk.audio) // 2
    assert result.done.chunks == len(result.chunks)
    assert result.done.samples == offset


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll a server-side condition (e.g. its metrics) until it holds, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0  # refused: nothing listens
