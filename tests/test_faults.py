"""Faults against real servers: SIGTERM with many streams in flight, the engine failing for one stream
while streams on other connections go on, and clients that vanish with several streams open (reading, or
stuck on a full socket)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.ws_client import assert_contiguous, wait_until
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Done, Error, ErrorCode, Pace, Start, Text
from voxwire.server.process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

REPLIES = [
    "Sure, I can help with that. The train leaves at seven in the morning. Bring a warm coat.",
    "Your order has shipped today. It should arrive on Thursday afternoon.",
    "The meeting moved to room four. Please let the others know. Thanks for your patience.",
    "It will rain this evening, so take an umbrella. Tomorrow looks sunny and mild.",
    "I found three recipes for you. The first one takes twenty minutes. The others take an hour.",
]
LONG_TEXT = " ".join(REPLIES * 3)
FAULT_MARKER = "VOXWIRE_TEST_FAULT"
"""A sentence holding it makes the engine raise for its stream (tests/fault_server.py)."""
SHUTDOWN_GRACE_S = 20.0
EXIT_MARGIN_S = 15.0
"""After the grace period: flushing and closing every connection, uvicorn's own shutdown, and joining the
engine thread, which finishes the batch it is running (up to a second or two on a loaded 2-core CPU)."""


COUNTERS = (
    "voxwire_streams_active",
    "voxwire_stream_tasks",
    "voxwire_engine_streams",
    "voxwire_engine_paused_streams",
    "voxwire_connections",
)


def wait_for_counters_zero(server: ServerProcess) -> None:
    try:
        wait_until(lambda: all(server.metrics()[name] == 0 for name in COUNTERS), what="counters to be zero")
    except AssertionError as timed_out:
        left = {name: server.metrics()[name] for name in COUNTERS}
        raise AssertionError(f"counters not back to zero: {left}") from timed_out


async def vanish(client: RecordingClient) -> None:
    """Drop the TCP connection with no close handshake (a reset, as data is unread). The socket closes on
    the event loop's next turn: wait for that, as the waits that follow block the loop."""
    client.ws.transport.abort()
    await client.ws.wait_closed()


async def first_audio(client: RecordingClient, *streams: str) -> None:
    """Read until each of ``streams`` (default: every stream started on ``client``) has a chunk; an error or
    a done before that fails."""
    names = streams or tuple(client.results)
    frame = await client.until(
        lambda f: isinstance(f, Error | Done) or all(client.results[s].chunks for s in names)
    )
    assert isinstance(frame, Chunk), frame


@contextlib.asynccontextmanager
async def open_clients(url: str, count: int) -> AsyncIterator[list[RecordingClient]]:
    """``count`` connections, closed at the end even when the test fails (so no stream outlives it)."""
    clients: list[RecordingClient] = []
    try:
        for _ in range(count):
            clients.append(await RecordingClient.open(url))
        yield clients
    finally:
        for client in clients:
            await client.close()


async def read_to_close(client: RecordingClient) -> int:
    """Read everything until the server closes the connection; the close code."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def assert_one_done_each(client: RecordingClient) -> None:
    """Guarantee 1 (one done per stream; RecordingClient.recv already fails on a chunk after done) and 2."""
    dones = [f.stream for f in client.frames if isinstance(f, Done)]
    assert sorted(dones) == sorted(client.results), dones
    for result in client.results.values():
        assert_contiguous(result)


async def test_sigterm_with_20_streams_in_flight_ends_each_once_and_exits_0() -> None:
    # asap streams: more than admission would take at once on a small machine (it starts from a
    # calibration, about 16 realtime streams on a 2-core CPU); what is tested is shutdown, not admission.
    server = ServerProcess(
        "--max-connections", "64", "--max-asap-streams", "32", "--shutdown-grace-s", str(SHUTDOWN_GRACE_S)
    ).start()
    try:
        clients = [await RecordingClient.open(server.ws_url) for _ in range(5)]
        for c, client in enumerate(clients):
            for s in range(4):
                await client.send(Start(stream=f"c{c}-s{s}", pace=Pace.ASAP))
        for c, client in enumerate(clients):
            for s in range(4):
                await client.send(Text(stream=f"c{c}-s{s}", text=REPLIES[(c + s) % len(REPLIES)], final=True))
        await asyncio.gather(*(first_audio(client) for client in clients))
        assert all(r.done is None for client in clients for r in client.results.values())

        server.signal(signal.SIGTERM)
        signalled_at = time.monotonic()
        codes = await asyncio.gather(*(read_to_close(client) for client in clients))
        assert codes == [1001] * len(clients)
        reasons: list[str] = []
        for client in clients:
            assert_one_done_each(client)
            assert not any(isinstance(f, Error) for f in client.frames)
            reasons += [str(r.done.reason) for r in client.results.values() if r.done is not None]
        assert len(reasons) == 20 and set(reasons) <= {"complete", "cancelled"}
        left_s = SHUTDOWN_GRACE_S + EXIT_MARGIN_S - (time.monotonic() - signalled_at)
        assert await asyncio.to_thread(server.wait, max(left_s, 0.1)) == 0
        print(
            f"\nsigterm: {reasons.count('complete')} complete, {reasons.count('cancelled')} cancelled, "
            f"exit {time.monotonic() - signalled_at:.1f} s after the signal"
        )
    finally:
        server.kill()


async def test_the_engine_failing_for_one_stream_leaves_the_other_connections_alone() -> None:
    # A fresh server rather than live_server, whose admission may be near its limit from earlier tests: a
    # fresh one starts from its calibration (about 16 realtime streams on a 2-core CPU), room for these six.
    server = ServerProcess(module="tests.fault_server", cwd=str(ROOT)).start()
    try:
        async with open_clients(server.ws_url, 6) as (*others, faulty):
            await engine_fault_mid_stream(others, faulty)
        wait_for_counters_zero(server)
    finally:
        server.stop()


async def engine_fault_mid_stream(others: list[RecordingClient], faulty: RecordingClient) -> None:
    for i, client in enumerate(others):
        await client.send(Start(stream=f"ok{i}"))
    await faulty.send(Start(stream="bad"))
    for i, client in enumerate(others):
        await client.send(Text(stream=f"ok{i}", text=REPLIES[i], final=True))
    # The faulty stream speaks a first sentence; the fault comes while it and the others are speaking.
    await faulty.send(Text(stream="bad", text="This first sentence is spoken.", flush=True))
    await asyncio.gather(*(first_audio(client) for client in [*others, faulty]))
    await faulty.send(Text(stream="bad", text=f"{FAULT_MARKER} breaks here. Never spoken.", final=True))

    bad = await faulty.until_done("bad")
    assert bad.done is not None and bad.done.reason == "error"
    assert [e.code for e in bad.errors] == [ErrorCode.INTERNAL]
    assert bad.chunks  # it failed mid-stream, after audio
    assert_contiguous(bad)  # done counts what was sent
    for i, client in enumerate(others):
        result = await client.until_done(f"ok{i}")
        assert result.done is not None and result.done.reason == "complete"
        assert_contiguous(result)
        assert not result.errors and not client.loose_errors
    # The faulty stream's connection is still good.
    await faulty.send(Start(stream="again"))
    await faulty.send(Text(stream="again", text="Working again.", final=True))
    again = await faulty.until_done("again")
    assert again.done is not None and again.done.reason == "complete" and again.chunks


# The vanishing clients below keep to three streams: live_server has measured its engine by now and admits
# about four at once on a 2-core CPU.


async def test_a_client_vanishing_with_several_streams_open_frees_everything(
    live_server: ServerProcess,
) -> None:
    async with open_clients(live_server.ws_url, 1) as (client,):
        # Two streams speaking, and one with half a sentence buffered (it has not reached the engine).
        for stream in ("speaking-1", "speaking-2"):
            await client.send(Start(stream=stream))
            await client.send(Text(stream=stream, text=LONG_TEXT, final=True))
        await client.send(Start(stream="buffered"))
        await client.send(Text(stream="buffered", text="and then she said that the"))
        await first_audio(client, "speaking-1", "speaking-2")
        assert live_server.metrics()["voxwire_streams_active"] >= 3
        await vanish(client)
    wait_for_counters_zero(live_server)


async def test_a_client_stuck_on_a_full_socket_vanishing_frees_everything(live_server: ServerProcess) -> None:
    # The client stops reading at once (a 4 KiB receive buffer, and the library reads no further than one
    # frame ahead), so the server's sender blocks on the socket, the stream tasks block on the full outbox,
    # and the engine pauses the streams. Then the client vanishes.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", live_server.port))
    client = await RecordingClient.open(live_server.ws_url, sock=sock, max_queue=1)
    try:
        for i in range(3):
            await client.send(Start(stream=f"stuck-{i}", sample_rate=48000))
            await client.send(Text(stream=f"stuck-{i}", text=LONG_TEXT, final=True))
        wait_until(
            lambda: live_server.metrics()["voxwire_engine_paused_streams"] >= 1,
            what="the engine to pause for the client that does not read",
        )
    finally:
        await vanish(client)
    wait_for_counters_zero(live_server)
