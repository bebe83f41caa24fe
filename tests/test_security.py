"""Security of the live server: auth tokens, browser Origins, what error messages reveal, what the logs keep,
and what a hostile client can make the server hold.

A server with ``--tokens secret-one,secret-two --allowed-origins http://good.example`` serves this module.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.ws_client import http_status, wait_until
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Error, ErrorCode, Start, Text
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

TOKENS = ("secret-one", "secret-two")
GOOD_ORIGIN = "http://good.example"


@pytest.fixture(scope="module")
def secured() -> Iterator[ServerProcess]:
    server = ServerProcess("--tokens", ",".join(TOKENS), "--allowed-origins", GOOD_ORIGIN).start()
    try:
        yield server
    finally:
        server.stop()


async def refused_status(url: str, **kwargs: Any) -> int:
    """The HTTP status that refused the WebSocket handshake (fails if the handshake succeeds)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, **kwargs):
            pass
    return refused.value.response.status_code


async def assert_serves(url: str, **kwargs: object) -> None:
    """The handshake succeeds and the connection speaks protocol v1: hello, then an answer to a frame."""
    client = await RecordingClient.open(url, **kwargs)
    assert client.hello.protocol == 1
    await client.ws.send(msgpack.packb({"type": "text", "stream": "nothing-here", "text": ""}))
    error = await client.error()
    assert error.code == ErrorCode.UNKNOWN_STREAM
    await client.close()


# -- tokens ---------------------------------------------------------------------------------------------


async def test_no_token_is_refused_with_401_before_the_websocket_opens(secured: ServerProcess) -> None:
    assert await refused_status(secured.ws_url) == 401


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?token=wrong", {}),
        ("?token=", {}),
        ("?token=secret-on", {}),  # a prefix of a real token
        ("?token=secret-one-and-more", {}),  # a real token as a prefix
        ("?token=SECRET-ONE", {}),
        ("?token=secret-one,secret-two", {}),  # the flag's syntax is not a token
        ("", {"Authorization": "Bearer wrong"}),
        ("", {"Authorization": "Bearer "}),
        ("", {"Authorization": "Basic secret-one"}),
        ("", {"Authorization": "secret-one"}),  # no scheme
        ("?token=wrong", {"Authorization": "Bearer secret-one"}),  # the query, when given, is the token
    ],
)
async def test_a_wrong_token_is_refused_with_401(
    secured: ServerProcess, query: str, headers: dict[str, str]
) -> None:
    assert await refused_status(secured.ws_url + query, additional_headers=headers) == 401


@pytest.mark.parametrize("token", TOKENS)
async def test_a_token_in_the_query_is_accepted(secured: ServerProcess, token: str) -> None:
    await assert_serves(f"{secured.ws_url}?token={token}")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])  # auth schemes are case-insensitive (RFC 9110)
@pytest.mark.parametrize("token", TOKENS)
async def test_a_bearer_token_in_the_authorization_header_is_accepted(
    secured: ServerProcess, scheme: str, token: str
) -> None:
    await assert_serves(secured.ws_url, additional_headers={"Authorization": f"{scheme} {token}"})


# -- origins --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://bad.example",
        "https://good.example",  # another scheme is another origin
        "http://good.example:8080",  # so is another port
        "http://good.example.evil.example",  # a suffix trick
        "http://evil.example/http://good.example",
        "null",  # what sandboxed iframes and file:// pages send
    ],
)
async def test_a_browser_origin_not_allowed_is_refused_with_403(secured: ServerProcess, origin: str) -> None:
    url = f"{secured.ws_url}?token={TOKENS[0]}"
    assert await refused_status(url, origin=origin) == 403


async def test_the_token_is_checked_before_the_origin(secured: ServerProcess) -> None:
    assert await refused_status(secured.ws_url, origin="http://bad.example") == 401


async def test_the_allowed_origin_is_served(secured: ServerProcess) -> None:
    await assert_serves(f"{secured.ws_url}?token={TOKENS[1]}", origin=GOOD_ORIGIN)


async def test_a_client_without_origin_is_served(secured: ServerProcess) -> None:
    # Non-browser clients (agents, the load tester) send no Origin; the Origin check exists to stop other
    # web pages from using a visitor's browser, and a token still guards these clients.
    await assert_serves(f"{secured.ws_url}?token={TOKENS[0]}")


# -- HTTP endpoints -------------------------------------------------------------------------------------


def test_health_and_metrics_need_no_token(secured: ServerProcess) -> None:
    # Load balancers probe /health and Prometheus scrapes /metrics without the clients' tokens; neither
    # carries client data (counts and latencies only). docs/operations.md says to keep /metrics private at
    # the proxy instead.
    assert http_status(secured.http_url + "/health") == 200
    assert http_status(secured.http_url + "/metrics") == 200
    assert "voxwire_connections" in secured.metrics()


# -- what the server reveals ----------------------------------------------------------------------------

LEAKS = [
    re.compile(r"Traceback|\bFile \""),
    re.compile(r"\b\w+\.py\b"),
    re.compile(r"(/[\w.-]+){2,}"),  # a file path
    re.compile(r"\b[A-Z]\w*(Error|Exception|Warning)\b"),  # an exception class name
    re.compile(r"\b(msgpack|torch|numpy|starlette|uvicorn|engine|server|protocol)\.\w"),  # a module
    re.compile(r"\bat 0x[0-9a-f]+"),  # an object's address
]
BAD_FRAMES = [
    b"",
    b"\xc1",
    b"\x92\x01",  # incomplete
    msgpack.packb({"type": "cancel", "stream": "s"}) + b"\x00",  # extra data
    b"\x91" * 2000 + b"\xc0",  # too deep
    b"\x82\xa4type\xa6cancel\xa6stream\xd9\x03\xed\xa0\x80",  # a lone surrogate as UTF-8
    b"\xc7\x03\xff\x00\x00\x00",  # a timestamp msgpack refuses
    b"\xdd\xff\xff\xff\xff",  # an array that claims four billion items
    b"\x81\x01\x01",  # an integer key
    b"\x81\x90\x01",  # a list as a key
    msgpack.packb({"type": "start", "stream": "s", "speed": float("nan")}),
    msgpack.packb({"type": "start", "stream": "s", "sample_rate": 2**64 - 1}),
    msgpack.packb({"type": "start", "stream": "s", "voice": "nobody"}),
    msgpack.packb({"type": "start", "stream": "s", "words": msgpack.ExtType(1, b"x")}),
    msgpack.packb({"type": "text", "stream": "t", "text": "x" * 100_000}),  # "s" was refused: ignored
    msgpack.packb({"type": "x" * 100_000}),
]


MAX_MESSAGE_CHARS = 500


def assert_nothing_leaks(error: Error) -> None:
    for pattern in LEAKS:
        assert not pattern.search(error.message), (pattern.pattern, error.message)
    assert len(error.message) < MAX_MESSAGE_CHARS  # a huge input is not echoed back


async def test_error_messages_reveal_no_internals(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    for frame in BAD_FRAMES:
        await client.ws.send(frame)
        assert_nothing_leaks(await client.error())
    await client.ws.send("not binary")
    assert_nothing_leaks(await client.error())
    # An engine failure mid-stream (the server's fault marker makes the engine raise for this sentence).
    await client.send(Start(stream="boom"))
    await client.send(Text(stream="boom", text="This is fine. VOXWIRE_TEST_FAULT is not.", final=True))
    result = await client.until_done("boom")
    assert result.done is not None and result.done.reason == "error"
    assert [e.code for e in result.errors] == [ErrorCode.INTERNAL]
    assert_nothing_leaks(result.errors[0])
    await client.close()


async def test_a_huge_value_is_not_echoed_back(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.ws.send(msgpack.packb({"type": "start", "stream": "s", "voice": "v" * 100_000}))
    error = await client.error()
    await client.close()
    assert error.code == ErrorCode.UNKNOWN_VOICE
    assert len(error.message) < MAX_MESSAGE_CHARS


async def test_tokens_never_reach_the_log(secured: ServerProcess) -> None:
    def refusals() -> int:
        return sum("refused WebSocket" in line for line in secured.log)

    before = refusals()
    await assert_serves(f"{secured.ws_url}?token={TOKENS[1]}")
    assert await refused_status(f"{secured.ws_url}?token=secret-twX") == 401  # a near miss is secret too
    # A handshake's log lines are written before its response goes out. A last refusal logs a line of
    # voxwire's own after all the lines above: once the log reader has it, it has them all.
    assert await refused_status(secured.ws_url) == 401
    wait_until(lambda: refusals() >= before + 2, what="the last refusal in the log")
    log = "\n".join(secured.log)
    assert TOKENS[1] not in log and "secret-twX" not in log
    # A refusal is routine, not an error: no ERROR line from uvicorn after the near miss's 401.
    assert "without completing handshake" not in log


# -- what a hostile client can make the server hold -----------------------------------------------------

FLOOD_FRAMES = 300_000
FLOOD_BATCH = 10_000
MAX_UNANSWERED = 100_000
"""Bad frames the server may take from a client that reads nothing: its own bound on unsent errors plus what
the kernel's socket buffers absorb (up to 4 MiB of ~94-byte error frames on Linux, about 45,000). Without a
bound, every 7-byte bad frame leaves a ~130-byte error in the server's memory."""
FLOOD_WINDOW_S = 10.0


def becomes_true(condition: Callable[[], bool], window_s: float) -> bool:
    """Whether ``condition`` holds at some point within ``window_s`` (polled; for "never happens" checks)."""
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


async def test_a_client_that_floods_bad_frames_without_reading_cannot_make_the_server_hold_them(
    live_server: ServerProcess,
) -> None:
    # Either answer is right: stop reading the socket once too many errors wait (TCP pushes back), or close
    # the connection ("a client that ignores limits"). Either way the server stops taking frames.
    def bad_frame_errors() -> float:
        return live_server.metrics().get('voxwire_errors_total{code="bad_frame"}', 0.0)

    before = bad_frame_errors()

    def answered() -> float:
        return bad_frame_errors() - before

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", live_server.port))
    client = await RecordingClient.open(
        live_server.ws_url, sock=sock, max_queue=1
    )  # reads the hello, then no more

    async def flood() -> None:
        for _ in range(FLOOD_FRAMES // FLOOD_BATCH):
            for _ in range(FLOOD_BATCH):
                await client.ws.send(b"\xc1")  # not msgpack: one error each
            if answered() > MAX_UNANSWERED:
                return

    try:
        await asyncio.wait_for(flood(), FLOOD_WINDOW_S * 3)
    except (TimeoutError, ConnectionClosed) as stopped:
        print(f"the server stopped the flood: {stopped!r}")  # backpressure or a close, both fine
    held_too_many = becomes_true(lambda: answered() > MAX_UNANSWERED, FLOOD_WINDOW_S)
    client.ws.transport.abort()
    await client.ws.wait_closed()  # the socket closes on the loop's next turn; the waits below block it
    assert not held_too_many, f"the server took {answered():.0f} frames from a client that reads nothing"
    wait_until(lambda: live_server.metrics()["voxwire_connections"] == 0, what="the flooder to be gone")
