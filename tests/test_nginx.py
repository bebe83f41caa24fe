"""Two real replicas behind Debian's nginx running the repository's recipe (deploy/nginx/voxwire.conf):
the protocol through the proxy, streams spread over the replicas, and a SIGTERM to one replica in the middle
of a load run that loses nothing.

Skipped where nginx is not installed (.ci/run installs Debian's nginx-light).
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.ws_client import assert_contiguous, http_status, wait_until
from voxwire.loadtest import LoadConfig, Outcome, run_load
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Cancel, Chunk, ErrorCode, Start, Text
from voxwire.server.process import ServerProcess
from voxwire.server.proxy import NginxProxy, find_nginx

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "deploy" / "nginx" / "voxwire.conf"
GRACE_S = 20.0
SHORT = "Hello from behind the proxy."
REPLIES = (
    "Sure, I can help with that.",
    "Your next meeting is at three thirty with the design team.",
    "Good morning! You have three new messages.",
    "The capital of Australia is Canberra, not Sydney.",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_nginx() is None, reason="needs nginx (Debian: apt-get install nginx-light)"),
]


def replica() -> ServerProcess:
    return ServerProcess("--workers", "1", "--shutdown-grace-s", str(GRACE_S), "--idle-timeout-s", "60")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ServerProcess, ServerProcess, NginxProxy]]:
    replicas = (replica(), replica())
    with ThreadPoolExecutor(2) as pool:  # both load their voice at once
        started = [pool.submit(r.start) for r in replicas]
        try:
            for future in started:
                future.result()
        except BaseException:
            for r in replicas:
                r.kill()
            raise
    proxy = NginxProxy(RECIPE, [r.port for r in replicas])
    try:
        proxy.start()
        yield replicas[0], replicas[1], proxy
    finally:
        proxy.stop()
        for r in replicas:
            r.stop()


def completed(server: ServerProcess) -> float:
    return server.metrics().get('voxwire_streams_total{reason="complete"}', 0.0)


async def test_the_protocol_works_through_the_proxy(
    cluster: tuple[ServerProcess, ServerProcess, NginxProxy],
) -> None:
    _, _, proxy = cluster
    client = await RecordingClient.open(proxy.ws_url)
    assert client.hello.notices == ("draining",)
    await client.send(Start(stream="s1"))
    await client.send(Text(stream="s1", text=SHORT, final=True))
    result = await client.until_done("s1")
    assert result.done is not None and result.done.reason == "complete" and result.chunks
    assert_contiguous(result)
    # Barge-in through the proxy: the done comes at once, reason cancelled.
    await client.send(Start(stream="s2"))
    await client.send(Text(stream="s2", text=" ".join(REPLIES) * 2, final=True))
    await client.until(lambda f: isinstance(f, Chunk) and f.stream == "s2")
    await client.send(Cancel(stream="s2"))
    assert (await client.until_done("s2")).done.reason == "cancelled"  # type: ignore[union-attr]
    # Bad input: an error frame, the connection stays open.
    await client.ws.send(b"\xc1")
    assert (await client.error()).code == ErrorCode.BAD_FRAME
    await client.close()

    # The Origin check still works: nginx passes Origin and the Host with its port.
    async with connect(proxy.ws_url, origin=proxy.http_url) as ws:  # type: ignore[arg-type]
        assert ws.protocol.state.name == "OPEN"
    with pytest.raises(InvalidStatus) as refused:
        await connect(proxy.ws_url, origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403

    assert http_status(proxy.http_url + "/ready") == 200
    assert http_status(proxy.http_url + "/health") == 200
    assert http_status(proxy.http_url + "/metrics") == 403  # per replica, never through the balancer


async def test_connections_and_streams_spread_over_the_replicas(
    cluster: tuple[ServerProcess, ServerProcess, NginxProxy],
) -> None:
    a, b, proxy = cluster
    before = completed(a), completed(b)
    clients = [await RecordingClient.open(proxy.ws_url) for _ in range(4)]
    # least_conn: held connections alternate between the two replicas.
    assert (a.metrics()["voxwire_connections"], b.metrics()["voxwire_connections"]) == (2, 2)
    for index, client in enumerate(clients):
        await client.send(Start(stream="s"))
        await client.send(Text(stream="s", text=REPLIES[index], final=True))
    results = await asyncio.gather(*(client.until_done("s") for client in clients))
    assert all(r.done is not None and r.done.reason == "complete" for r in results)
    assert (completed(a) - before[0], completed(b) - before[1]) == (2, 2)
    for client in clients:
        await client.close()


async def test_sigterm_to_one_replica_mid_run_loses_no_stream(
    cluster: tuple[ServerProcess, ServerProcess, NginxProxy],
) -> None:
    a, b, proxy = cluster
    config = LoadConfig(
        url=proxy.ws_url,
        streams=6,
        duration_s=12.0,
        ramp_s=1.0,
        texts=REPLIES,
        token_rate=60.0,
        grace_s=GRACE_S,
        seed=17,
    )
    load = asyncio.create_task(run_load(config))
    # Mid-run, with streams in flight on the replica to be drained:
    await asyncio.to_thread(
        wait_until, lambda: a.metrics()["voxwire_streams_active"] >= 2, 30.0, "streams on replica a"
    )
    b_before = completed(b)
    a.signal(signal.SIGTERM)
    assert await asyncio.to_thread(a.wait, GRACE_S + 15) == 0
    report = await load

    assert not report.result.violations, report.to_table()
    assert report.outcomes[Outcome.UNFINISHED] == 0 and report.outcomes[Outcome.CANCELLED] == 0
    for record in report.result.records:
        # Every stream ended complete, or was refused before it started (then spoken again).
        refused_before_start = record.chunks == 0 and set(record.errors) <= {"overloaded", "shutting_down"}
        assert record.outcome == Outcome.COMPLETE or refused_before_start, record
    assert report.result.errors["client:draining_notice"] >= 1  # a's clients were told, and moved on
    # Every stream of the run that the drained replica accepted ended complete.
    ends = [line for line in a.log if re.search(r"stream end id='\d+-\d+'", line)]
    assert ends and all("reason=complete" in line for line in ends), ends
    # New streams went to the other replica: it completed more after the SIGTERM, and still serves.
    assert completed(b) > b_before
    client = await RecordingClient.open(proxy.ws_url)
    await client.send(Start(stream="after"))
    await client.send(Text(stream="after", text=SHORT, final=True))
    assert (await client.until_done("after")).done.reason == "complete"  # type: ignore[union-attr]
    await client.close()
    print(f"\n{report.to_table()}")
