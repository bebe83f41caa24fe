"""No client can hurt another, and nothing fails open (issue 11), against real servers with the real voice.

Faults come from tests/fault_server.py: its voices fail when a text holds a marker. The servers that must
die get their own process; the rest share ``live_server``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.fault_server import CRASH, OOM, STICKY
from tests.scripts import SCRIPTS
from tests.ws_client import http_status, wait_until
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Cancel, Chunk, Done, Error, ErrorCode, Start, Text
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LONG_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods. " * 6


def fault_server(*flags: str) -> ServerProcess:
    return ServerProcess(*flags, module="tests.fault_server", cwd=str(ROOT)).start()


async def first_audio(client: RecordingClient, stream: str) -> None:
    frame = await client.until(lambda f: isinstance(f, Chunk | Done | Error) and f.stream == stream)
    assert isinstance(frame, Chunk), frame


# -- text in any script -------------------------------------------------------------------------------------


async def test_text_in_every_script_is_spoken_with_no_error(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    for name, text in SCRIPTS.items():
        await client.send(Start(stream=name))
        await client.send(Text(stream=name, text=text, final=True))
        if not any(c.isalnum() for c in text):  # emoji alone: nothing to say, by the segmenter's rule
            result = await client.until_done(name)
            assert result.done is not None and result.done.reason == "complete" and not result.chunks, name
            continue
        await first_audio(client, name)
        await client.send(Cancel(stream=name))
        result = await client.until_done(name)
        assert result.done is not None and result.done.reason in {"cancelled", "complete"}, name
        assert not result.errors, (name, result.errors)
    await client.close()
    assert http_status(live_server.http_url + "/health") == 200


async def test_control_characters_in_text_are_spoken_as_spaces(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="nul"))
    await client.send(Text(stream="nul", text="Hello\x00world.\x07 Bell\x1b[31m and\x9b more.", final=True))
    result = await client.until_done("nul")
    assert result.done is not None and result.done.reason == "complete" and result.chunks
    assert not result.errors
    await client.close()


# -- a watched engine ---------------------------------------------------------------------------------------


async def speaking(url: str, *streams: str) -> RecordingClient:
    """A client with these streams open and speaking (input not ended: only their end can end them)."""
    client = await RecordingClient.open(url)
    for stream in streams:
        await client.send(Start(stream=stream))
        await client.send(Text(stream=stream, text=LONG_TEXT))
    for stream in streams:
        await first_audio(client, stream)
    return client


async def every_stream_failed(clients: dict[RecordingClient, tuple[str, ...]]) -> None:
    for client, streams in clients.items():
        for stream in streams:
            result = await client.until_done(stream)
            assert result.done is not None and result.done.reason == "error", (stream, result.done)
            assert [e.code for e in result.errors] == [ErrorCode.INTERNAL]


@pytest.mark.parametrize("marker", [CRASH, STICKY], ids=["thread dies", "device breaks"])
async def test_a_dead_engine_fails_every_stream_at_once_and_the_process_exits_nonzero(marker: str) -> None:
    server = fault_server()
    try:
        one = await speaking(server.ws_url, "a1", "a2")
        two = await speaking(server.ws_url, "b1")
        killer = await RecordingClient.open(server.ws_url)
        await killer.send(Start(stream="k"))
        await killer.send(Text(stream="k", text=f"{marker} now.", final=True))
        await every_stream_failed({one: ("a1", "a2"), two: ("b1",), killer: ("k",)})
        assert http_status(server.http_url + "/health") != 200  # 503, or already gone
        assert server.wait(60) == 1
        assert any("the engine stopped" in line for line in server.log)
    finally:
        server.kill()


async def test_out_of_memory_on_one_stream_fails_only_that_stream(live_server: ServerProcess) -> None:
    calm = await speaking(live_server.ws_url, "calm")
    greedy = await RecordingClient.open(live_server.ws_url)
    await greedy.send(Start(stream="greedy"))
    await greedy.send(Text(stream="greedy", text=f"{OOM} wants it all.", final=True))
    result = await greedy.until_done("greedy")
    assert result.done is not None and result.done.reason == "error"
    await calm.send(Text(stream="calm", text="", final=True))
    spoken = await calm.until_done("calm")
    assert spoken.done is not None and spoken.done.reason == "complete" and not spoken.errors
    assert http_status(live_server.http_url + "/health") == 200
    for client in (calm, greedy):
        await client.close()


# -- doors --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tight() -> Iterator[ServerProcess]:
    """Three connections at most, and one second to send a request's head."""
    server = ServerProcess("--max-connections", "3", "--handshake-timeout-s", "1").start()
    try:
        yield server
    finally:
        server.stop()


async def test_half_open_requests_are_dropped_and_lock_no_one_out(tight: ServerProcess) -> None:
    sockets = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", tight.port))
        sock.sendall(b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # never finished
        sockets.append(sock)
    client = await RecordingClient.open(tight.ws_url)  # served while 200 half-open requests wait
    assert client.hello.protocol == 1
    await client.close()
    for sock in sockets:
        sock.settimeout(30)
        assert await asyncio.to_thread(sock.recv, 1) == b""  # dropped by the server at its deadline
        sock.close()


async def test_idle_connections_make_room_for_new_ones_and_busy_ones_do_not(tight: ServerProcess) -> None:
    idle = [await RecordingClient.open(tight.ws_url) for _ in range(3)]
    newcomer = await RecordingClient.open(tight.ws_url)  # at the limit: the longest idle one makes room
    await asyncio.wait_for(idle[0].ws.wait_closed(), 30)
    assert idle[0].ws.close_code == 1000 and "room" in (idle[0].ws.close_reason or "")
    busy = [*idle[1:], newcomer]
    for index, client in enumerate(busy):
        await client.send(Start(stream=f"s{index}"))
        await client.send(Text(stream=f"s{index}", text=LONG_TEXT))
        await first_audio(client, f"s{index}")
    async with connect(tight.ws_url) as late:
        refusal = msgpack.unpackb(await late.recv())
        assert refusal["type"] == "error" and refusal["code"] == "overloaded"
        await late.wait_closed()
        assert late.close_code == 1013
    for client in busy:
        await client.close()


async def test_a_connection_with_no_stream_is_closed_after_the_idle_timeout() -> None:
    with ServerProcess("--idle-timeout-s", "1.5") as server:
        talker = await RecordingClient.open(server.ws_url)
        assert talker.hello.limits.idle_timeout_ms == 1500
        await talker.send(Start(stream="s"))
        await talker.send(Text(stream="s", text=LONG_TEXT[:200], final=True))
        result = await talker.until_done("s")  # speaking for longer than the timeout: never closed
        assert result.done is not None and result.done.reason == "complete"
        silent = await RecordingClient.open(server.ws_url)
        for client in (talker, silent):
            await asyncio.wait_for(client.ws.wait_closed(), 30)
            assert (client.ws.close_code, client.ws.close_reason) == (1000, "idle timeout")


async def test_hello_announces_the_keepalive_and_idle_rules(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    limits = client.hello.limits
    assert (limits.idle_timeout_ms, limits.ping_interval_ms, limits.ping_timeout_ms) == (
        120_000,
        20_000,
        20_000,
    )
    await client.close()


async def test_a_page_from_the_servers_own_origin_is_served_and_others_are_not(
    live_server: ServerProcess,
) -> None:
    own = Origin(f"http://127.0.0.1:{live_server.port}")
    async with connect(live_server.ws_url, origin=own) as ws:
        assert msgpack.unpackb(await ws.recv())["type"] == "hello"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(live_server.ws_url, origin=Origin("https://elsewhere.example")):
            pass
    assert refused.value.response.status_code == 403


async def test_client_strings_reach_the_log_escaped(live_server: ServerProcess) -> None:
    evil = "x\nFORGED LOG LINE \x1b[31m"
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream=evil))
    await client.send(Text(stream=evil, text="Hi.", final=True))
    await client.until_done(evil)
    await client.close()
    # The stream's end is logged as its `done` goes out, and the log reader may not have it yet: wait for it.
    escaped = "'x\\nFORGED LOG LINE \\x1b[31m'"
    wait_until(lambda: any(escaped in line for line in live_server.log), what="the stream's end in the log")
    assert not any(line.startswith("FORGED LOG LINE") for line in live_server.log)
    assert not any("\x1b" in line for line in live_server.log)


# -- the protocol as written --------------------------------------------------------------------------------


async def test_a_cancel_of_an_id_never_started_is_ignored(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    for stream in ("never", "never-either"):
        await client.send(Cancel(stream=stream))
    await client.send(Text(stream="probe", text="x"))  # answered: unknown_stream
    reply = await client.recv()
    assert isinstance(reply, Error) and reply.stream == "probe"  # nothing came for the two cancels before
    await client.close()


async def test_an_unknown_frame_type_ends_no_stream(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="s"))
    await client.send(Text(stream="s", text="Still speaking after the unknown frame.", final=True))
    await client.ws.send(msgpack.packb({"type": "pause", "stream": "s"}))
    result = await client.until_done("s")
    assert result.done is not None and result.done.reason == "complete"
    assert [e.code for e in result.errors] == [ErrorCode.UNKNOWN_TYPE]
    await client.close()
