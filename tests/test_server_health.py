"""Liveness, readiness by capacity, and the drain notice, against real servers (uvicorn, the real voice)."""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from tests.ws_client import assert_contiguous, wait_until
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, Draining, Error, ErrorCode, Start, Text
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

REPLY = (
    "Sure, I can help with that. Your next meeting is at three thirty with the design team. "
    "The capital of Australia is Canberra, not Sydney, which surprises a lot of people."
)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def test_live_and_ready_answer_200_on_a_loaded_idle_server(live_server: ServerProcess) -> None:
    assert get(live_server.http_url + "/live") == (200, "ok")
    assert get(live_server.http_url + "/ready") == (200, "ready")
    assert get(live_server.http_url + "/health") == (200, "ok")
    metrics = live_server.metrics()
    assert metrics["voxwire_ready"] == 1
    assert metrics["voxwire_capacity_used"] == 0


async def test_readiness_turns_false_before_admission_refuses_and_comes_back(
    live_server: ServerProcess,
) -> None:
    # The capacity estimate needs a second of engine work first.
    warm = await RecordingClient.open(live_server.ws_url)
    await warm.send(Start(stream="warm"))
    await warm.send(Text(stream="warm", text=REPLY, final=True))
    await warm.until_done("warm")
    await warm.close()
    assert live_server.metrics()["voxwire_engine_capacity_streams"] > 0
    refused_before = live_server.metrics().get('voxwire_errors_total{code="overloaded"}', 0)

    clients: list[RecordingClient] = []
    opened = 0
    try:
        while get(live_server.http_url + "/ready")[0] == 200:
            assert opened < 64, "readiness never turned false"
            if opened % 4 == 0:  # max_streams per connection
                clients.append(await RecordingClient.open(live_server.ws_url))
            client, stream = clients[-1], f"idle{opened}"
            await client.send(Start(stream=stream))  # a stream with no text yet: it holds its place
            # A barrier: the answer to a text for an unknown id comes after the start was handled.
            await client.send(Text(stream=f"probe{opened}", text=""))
            await client.until(lambda f: isinstance(f, Error) and f.stream == f"probe{opened}")  # noqa: B023
            # Ready a moment ago, so this start was admitted: no overloaded refusal for it.
            assert not client.results[stream].errors, client.results[stream].errors
            opened += 1
        assert get(live_server.http_url + "/ready") == (503, "full")
        assert opened >= 1
        metrics = live_server.metrics()
        assert metrics["voxwire_ready"] == 0 and metrics["voxwire_capacity_used"] >= 0.9
        assert metrics.get('voxwire_errors_total{code="overloaded"}', 0) == refused_before  # none refused
    finally:
        for client in clients:
            await client.close()  # the streams end with their connections
    wait_until(lambda: get(live_server.http_url + "/ready")[0] == 200, what="readiness to come back")


async def test_sigterm_sends_draining_and_refuses_later_starts_naming_them() -> None:
    """SIGTERM sends `draining` on every connection; a later start is refused with `shutting_down` naming
    its stream; the stream in flight completes; then close 1001 and exit 0."""
    with ServerProcess("--shutdown-grace-s", "20") as server:
        client = await RecordingClient.open(server.ws_url)
        leaver = await RecordingClient.open(server.ws_url)
        await client.send(Start(stream="going"))
        await client.send(Text(stream="going", text=REPLY, final=True))
        await client.until(lambda f: isinstance(f, Chunk))
        server.signal(signal.SIGTERM)
        notice = await client.until(lambda f: isinstance(f, Draining))
        assert isinstance(notice, Draining) and notice.grace_ms == 20000
        assert isinstance(await leaver.until(lambda f: isinstance(f, Draining)), Draining)
        await leaver.close()  # a client that leaves on the notice
        await client.send(Start(stream="late"))
        error = await client.error()
        assert (error.code, error.stream) == (ErrorCode.SHUTTING_DOWN, "late")
        result = await client.until_done("going")
        assert result.done is not None and result.done.reason == "complete"
        assert_contiguous(result)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert await asyncio.to_thread(server.wait, 60) == 0
    ends = [line for line in server.log if "stream end" in line]
    assert len(ends) == 1 and re.search(r"id='going' reason=complete", ends[0]), ends
