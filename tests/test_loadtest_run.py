"""`run_load` end to end against a small fake server that speaks protocol v1 with synthetic chunks.

The fake server (a `websockets` server on 127.0.0.1, port 0) sends `hello`, then for every stream whose
text is final a few chunks and a `done`; `cancel` gets `done` with reason `cancelled`. Switches make it
misbehave in one way at a time, to check that the load generator reports each way.
"""

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import Request, ServerConnection, serve

from voxwire.loadtest.config import LoadConfig, TokenPlacement
from voxwire.loadtest.results import Outcome
from voxwire.loadtest.runner import run_load
from voxwire.protocol import (
    Cancel,
    Chunk,
    Done,
    Draining,
    Error,
    ErrorCode,
    Hello,
    Limits,
    Start,
    Text,
    VoiceInfo,
    decode_client,
    encode,
)

RATE = 8000
REPO = Path(__file__).resolve().parents[1]
HELLO = Hello(
    server="fake/1",
    voices=(VoiceInfo("fake", "en", RATE),),
    sample_rates=(RATE,),
    limits=Limits(
        max_streams=8,
        max_text_bytes=4096,
        max_frame_bytes=65536,
        max_connections=64,
        max_buffered_audio_ms=5000,
    ),
)


@dataclass
class FakeServer:
    chunks: int = 3
    samples: int = 800
    interval_s: float = 0.0
    skip_seq: bool = False
    """Number the chunks 0, 2, 3, ... (counts in `done` stay right)."""
    chunk_after_done: bool = False
    """Send one more chunk after each `done`."""
    until_cancel: bool = False
    """Keep speaking (up to 1000 chunks) until the stream is cancelled."""
    silent: bool = False
    """Accept streams and never answer them."""
    refuse: ErrorCode | None = None
    """Answer every `start` with this error, and no `done`."""
    close_mid_stream: bool = False
    """Close the connection (1011) after a stream's first chunk."""
    drains: int = 0
    """The first this many connections drain at the first `start` after a `done`: `draining`, then close
    1001 at once, that `start` unanswered (as if it had crossed the notice on the wire)."""
    token: str | None = None
    requests: list[Request] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def process_request(self, connection: ServerConnection, request: Request) -> Any:
        self.requests.append(request)
        if self.token is None:
            return None
        if request.headers.get("Authorization") == f"Bearer {self.token}" or request.path.endswith(
            f"?token={self.token}"
        ):
            return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "bad token\n")

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(encode(HELLO))
        drain = self.drains > 0
        self.drains -= 1
        sent: dict[str, list[int]] = {}  # stream -> [chunks, samples]
        ended: set[str] = set()
        speaking: dict[str, asyncio.Task[None]] = {}
        try:
            async for message in ws:
                match decode_client(message):
                    case Start() if drain and ended:
                        await ws.send(encode(Draining(grace_ms=1000)))
                        await ws.close(1001)
                        return
                    case Start(stream=stream) if self.refuse is not None:
                        await ws.send(encode(Error(self.refuse, "refused by the fake", stream)))
                    case Start(stream=stream):
                        sent[stream] = [0, 0]
                    case Text(stream=stream) if stream not in sent:
                        await ws.send(encode(Error(ErrorCode.UNKNOWN_STREAM, "never started", stream)))
                    case Text(stream=stream, text=text, final=final):
                        self.texts.append(text)
                        if final and not self.silent:
                            speaking[stream] = asyncio.create_task(
                                self._speak(ws, stream, sent[stream], ended)
                            )
                    case Cancel(stream=stream) if stream in sent and stream not in ended:
                        ended.add(stream)
                        if stream in speaking:
                            speaking[stream].cancel()
                        chunks, samples = sent[stream]
                        await ws.send(encode(Done(stream, "cancelled", chunks, samples)))
        finally:
            for task in speaking.values():
                task.cancel()

    async def _speak(self, ws: ServerConnection, stream: str, sent: list[int], ended: set[str]) -> None:
        count = 1000 if self.until_cancel else self.chunks
        for index in range(count):
            await asyncio.sleep(self.interval_s)
            seq = index + 1 if self.skip_seq and index else index
            await ws.send(encode(Chunk(stream, seq, sent[1], RATE, b"\x01\x00" * self.samples)))
            sent[0] += 1
            sent[1] += self.samples
            if self.close_mid_stream:
                await ws.close(1011, "fake failure")
                return
        ended.add(stream)
        await ws.send(encode(Done(stream, "complete", sent[0], sent[1])))
        if self.chunk_after_done:
            await ws.send(encode(Chunk(stream, sent[0], sent[1], RATE, b"\x01\x00" * self.samples)))


@asynccontextmanager
async def serving(fake: FakeServer) -> AsyncIterator[str]:
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/ws"


def config(url: str, **changes: Any) -> LoadConfig:
    settings: dict[str, Any] = {
        "url": url,
        "streams": 2,
        "duration_s": 0.4,
        "token_rate": 1000.0,
        "texts": ("Hello there. How are you today?", "Fine, thanks!"),
        "grace_s": 5.0,
    }
    return LoadConfig(**(settings | changes))


async def test_a_well_behaved_server_gets_a_clean_report():
    fake = FakeServer()
    async with serving(fake) as url:
        report = await run_load(config(url, streams=3, streams_per_conn=2, jitter_ms=50))
    records = report.result.records
    assert len(records) >= 3
    assert {record.slot for record in records} == {0, 1, 2}
    assert len({(record.connection, record.stream) for record in records}) == len(records)
    assert report.outcomes == {
        "complete": len(records),
        "cancelled": 0,
        "error": 0,
        "unfinished": 0,
        "retried": 0,
    }
    assert all((record.chunks, record.samples, record.sample_rate) == (3, 2400, RATE) for record in records)
    assert report.first_audio_ms.count == len(records)
    assert report.gap_ms.count == 2 * len(records)
    assert report.audio_s == pytest.approx(len(records) * 2400 / RATE)
    assert not report.result.errors and not report.result.violations
    assert report.result.connections_opened == 2
    assert report.result.server == "fake/1"
    # The server got every reply's text, token by token.
    assert len(fake.texts) == sum(record.tokens for record in records)
    assert sum(map(len, fake.texts)) == sum(record.text_chars for record in records)
    assert "protocol violations   none" in report.to_table()


async def test_slots_start_on_the_ramp():
    async with serving(FakeServer()) as url:
        report = await run_load(config(url, streams=4, ramp_s=0.4, duration_s=0.6))
    first_start = {
        slot: min(r.started_s for r in report.result.records if r.slot == slot) for slot in range(4)
    }
    assert all(first_start[slot] >= 0.1 * slot - 0.001 for slot in range(4))


async def test_a_skipped_seq_is_reported_once_per_stream():
    async with serving(FakeServer(skip_seq=True)) as url:
        report = await run_load(config(url))
    assert report.result.violations == {"seq_gap": len(report.result.records)}
    assert all(record.violations == ["seq_gap"] for record in report.result.records)


async def test_a_chunk_after_done_is_a_violation():
    async with serving(FakeServer(chunk_after_done=True)) as url:
        report = await run_load(config(url, streams=1))
    assert set(report.result.violations) == {"chunk_after_done"}
    assert report.result.violations["chunk_after_done"] >= 1


async def test_barge_in_cancels_every_stream_and_measures_cancel_to_done():
    async with serving(FakeServer(until_cancel=True, interval_s=0.01)) as url:
        report = await run_load(config(url, cancel_rate=1.0, texts=("Hi there.",)))
    records = report.result.records
    assert records and all(record.outcome == Outcome.CANCELLED for record in records)
    assert report.cancels_sent == len(records)
    assert report.cancel_to_done_ms.count == len(records)
    assert not report.result.violations and not report.result.errors


async def test_refused_starts_are_errors_by_code_and_do_not_hang():
    async with serving(FakeServer(refuse=ErrorCode.OVERLOADED)) as url:
        report = await run_load(config(url, duration_s=0.3))
    records = report.result.records
    assert records and all(record.outcome == Outcome.ERROR for record in records)
    assert report.result.errors["overloaded"] == len(records)
    # Tokens sent before the refusal arrived are answered with unknown_stream, as a real server would.
    assert set(report.result.errors) <= {"overloaded", "unknown_stream"}
    assert not report.result.violations


async def test_a_server_closing_mid_stream_is_counted_with_the_missing_done():
    async with serving(FakeServer(close_mid_stream=True)) as url:
        report = await run_load(config(url, streams=1, duration_s=0.3))
    assert report.result.errors["client:closed_1011"] >= 1
    assert report.result.violations == {"missing_done": report.result.errors["client:closed_1011"]}
    assert all(record.outcome == Outcome.UNFINISHED for record in report.result.records)


async def test_a_draining_server_is_left_for_a_new_connection_and_nothing_is_a_violation():
    async with serving(FakeServer(drains=2, interval_s=0.01)) as url:
        report = await run_load(config(url, duration_s=1.0))
    assert not report.result.violations
    assert report.result.errors["client:draining_notice"] == 2
    assert report.result.connections_opened >= 4  # each drained connection was replaced
    outcomes = {record.outcome for record in report.result.records}
    assert outcomes <= {Outcome.COMPLETE, Outcome.RETRIED}
    # A start lost in the drain's close is spoken again, on the new connection.
    retried = [r for r in report.result.records if r.outcome == Outcome.RETRIED]
    assert len(retried) == 2 and report.outcomes["retried"] == 2
    for record in retried:
        again = [r for r in report.result.records if r.slot == record.slot and r.started_s > record.started_s]
        assert again and again[0].text_chars == record.text_chars


async def test_streams_that_never_end_are_given_up_at_the_grace_deadline():
    async with serving(FakeServer(silent=True)) as url:
        report = await run_load(config(url, duration_s=0.3, grace_s=0.2))
    assert [record.outcome for record in report.result.records] == [Outcome.UNFINISHED] * 2
    assert report.result.errors == {"client:unfinished": 2}
    assert report.result.wall_s < 5  # bounded by the deadlines, far below the 30 s stream timeout


async def test_silent_streams_are_given_up_after_the_stream_timeout():
    async with serving(FakeServer(silent=True)) as url:
        report = await run_load(config(url, streams=1, duration_s=0.3, stream_timeout_s=0.5))
    assert report.result.errors == {"client:stream_timeout": 1}


@pytest.mark.parametrize("placement", list(TokenPlacement))
async def test_the_token_travels_where_asked(placement):
    fake = FakeServer(token="s3cret")
    async with serving(fake) as url:
        report = await run_load(config(url, streams=1, token="s3cret", token_placement=placement))
    assert report.outcomes["complete"] >= 1 and not report.result.errors
    request = fake.requests[0]
    if placement == TokenPlacement.HEADER:
        assert request.headers["Authorization"] == "Bearer s3cret" and "token" not in request.path
    else:
        assert request.path == "/v1/ws?token=s3cret" and "Authorization" not in request.headers


async def test_a_refused_handshake_is_counted_by_status_for_every_attempt():
    fake = FakeServer(token="s3cret")
    async with serving(fake) as url:
        report = await run_load(config(url, streams=1, duration_s=0.7, token="wrong"))
    assert report.result.records == []
    assert report.result.connections_opened == 0
    assert len(fake.requests) >= 1  # at 0 s, and again after each back-off (0.5 s, ...) before the end
    assert report.result.errors == {"client:http_401": len(fake.requests)}


async def test_an_unreachable_server_is_counted_not_raised():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = await run_load(config(f"ws://127.0.0.1:{port}/v1/ws", streams=1, duration_s=0.2))
    assert report.result.records == []
    assert report.result.errors == {"client:connect_failed": 1}


async def test_worker_processes_merge_their_raw_results():
    async with serving(FakeServer()) as url:
        report = await run_load(config(url, streams=2, procs=2, duration_s=0.5))
    records = report.result.records
    assert {record.connection for record in records} == {0, 1}
    assert report.result.connections_opened == 2
    assert report.outcomes["complete"] == len(records)
    assert report.first_audio_ms.count == len(records)
    assert not report.result.violations and not report.result.errors


async def test_the_command_line_prints_the_table_writes_json_and_fails_on_violations(tmp_path):
    out = tmp_path / "report.json"
    async with serving(FakeServer(skip_seq=True)) as url:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "voxwire.loadtest", "--url", url, "--streams", "1", "--duration", "0.3"),
            *("--token-rate", "500", "--json", str(out)),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
    assert process.returncode == 1, stderr.decode()
    assert "protocol violations   seq_gap" in stdout.decode()
    assert "first-audio p50" in stderr.decode()  # the progress line, as plain lines when not a tty
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["violations"]["seq_gap"] == figures["streams"]["started"] >= 1
    assert len(figures["records"]) == figures["streams"]["started"]
