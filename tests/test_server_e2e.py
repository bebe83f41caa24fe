"""End to end: the real server (uvicorn, real bundled voice) on a free port, driven by a real WebSocket client
through every guarantee and error code of protocol v1."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
from typing import Any
from urllib.parse import urlsplit

import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.ws_client import assert_contiguous, http_status, wait_until
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Cancel, Chunk, Error, ErrorCode, Start, Text, decode_server
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."
LONG_TEXT = " ".join(
    [
        "Once upon a time, in a small village by the sea, there lived an old fisherman and his wife.",
        "Every morning he rowed out beyond the rocks and cast his nets into the cold grey water.",
        "Most days he caught little, but he never complained, and he always came home singing.",
        "One winter morning, the nets came up heavy, and in them was a fish of pure shining gold.",
    ]
)


def engine_idle(server: ServerProcess) -> bool:
    m = server.metrics()
    return (
        m["voxwire_streams_active"] == 0
        and m["voxwire_stream_tasks"] == 0
        and m["voxwire_engine_streams"] == 0
        and m["voxwire_connections"] == 0
    )


async def speak(client: RecordingClient, stream: str, text: str, **start: Any) -> None:
    await client.send(Start(stream=stream, **start))
    await client.send(Text(stream=stream, text=text, final=True))


async def test_hello_comes_first_and_describes_the_server(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    hello = client.hello
    assert hello.protocol == 1
    assert hello.server.startswith("voxwire/")
    assert [v.id for v in hello.voices] == ["en_US-joe-medium"]
    assert hello.voices[0].sample_rate == 22050
    assert 22050 in hello.sample_rates
    assert (
        hello.limits.max_streams >= 1 and hello.limits.max_text_bytes > 0 and hello.limits.max_frame_bytes > 0
    )
    await client.close()


async def test_one_sentence_gives_ordered_contiguous_chunks_and_a_matching_done(
    live_server: ServerProcess,
) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await speak(client, "s1", SENTENCE)
    result = await client.until_done("s1")
    assert result.done is not None and result.done.reason == "complete"
    assert_contiguous(result)
    assert all(c.sample_rate == 22050 for c in result.chunks)
    seconds = result.done.samples / 22050
    assert 2.0 < seconds < 10.0  # a 14-word sentence
    pcm = result.pcm().astype(np.float64)
    assert np.sqrt(np.mean(pcm**2)) > 300  # audible speech, not silence
    assert result.done.ttfa_ms is not None and result.done.ttfa_ms > 0
    await client.close()


async def test_incremental_text_is_spoken_before_final(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="inc"))
    for token in ["Hel", "lo the", "re, my ", "friend. ", "How are", " you"]:
        await client.send(Text(stream="inc", text=token))
    first = await client.until(lambda f: isinstance(f, Chunk) and f.stream == "inc")
    assert isinstance(first, Chunk) and first.seq == 0  # audio arrived while the stream is still open
    await client.send(Text(stream="inc", text=" today?", final=True))
    result = await client.until_done("inc")
    assert result.done is not None and result.done.reason == "complete"
    assert_contiguous(result)
    await client.close()


async def test_one_character_per_frame_still_speaks_everything(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="chars"))
    text = "Dr. Smith paid $3.14 for it. Then he left."
    for ch in text:
        await client.send(Text(stream="chars", text=ch))
    await client.send(Text(stream="chars", text="", final=True))
    result = await client.until_done("chars")
    assert result.done is not None and result.done.reason == "complete"
    assert_contiguous(result)
    assert result.done.samples / 22050 > 1.5
    await client.close()


async def test_two_concurrent_streams_on_one_connection(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="a"))
    await client.send(Start(stream="b", sample_rate=16000))
    await client.send(Text(stream="a", text=SENTENCE, final=True))
    await client.send(Text(stream="b", text="A second voice speaks at the same time.", final=True))
    a = await client.until_done("a")
    b = await client.until_done("b")
    for result in (a, b):
        assert result.done is not None and result.done.reason == "complete"
        assert_contiguous(result)
    assert {c.sample_rate for c in b.chunks} == {16000}
    await client.close()


async def test_resampled_stream_has_the_right_length(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await speak(client, "native", "Resampling must not change the length.")
    await speak(client, "r48", "Resampling must not change the length.", sample_rate=48000)
    native = await client.until_done("native")
    r48 = await client.until_done("r48")
    assert_contiguous(r48)
    assert native.done is not None and r48.done is not None
    # Same text, same seedless noise: lengths differ by the noise only; rates must scale by 48000/22050.
    assert r48.done.samples / 48000 == pytest.approx(native.done.samples / 22050, rel=0.35)
    await client.close()


async def test_flush_speaks_buffered_text_without_ending_the_stream(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="f"))
    await client.send(Text(stream="f", text="no punctuation here at all", flush=True))
    await client.until(lambda f: isinstance(f, Chunk) and f.stream == "f")
    assert client.results["f"].done is None
    await client.send(Text(stream="f", text="And the end.", final=True))
    result = await client.until_done("f")
    assert result.done is not None and result.done.reason == "complete"
    await client.close()


async def test_whitespace_only_stream_completes_with_zero_chunks(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await speak(client, "blank", "  ... !  ")
    result = await client.until_done("blank")
    assert result.done is not None and result.done.reason == "complete"
    assert result.done.chunks == 0 and result.chunks == []
    await client.close()


async def test_cancel_mid_stream_is_answered_promptly_and_nothing_follows(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await speak(client, "long", LONG_TEXT)
    await client.until(lambda f: isinstance(f, Chunk) and f.stream == "long")
    await client.send(Cancel(stream="long"))
    result = await client.until_done("long")
    assert result.done is not None and result.done.reason == "cancelled"
    assert result.done.chunks == len(result.chunks)
    # The id is free again; no chunk of the old stream comes after its done (RecordingClient.recv checks).
    await speak(client, "long", "Short one.")
    again = await client.until_done("long")
    assert again.done is not None and again.done.reason == "complete"
    assert_contiguous(again)
    await client.close()
    wait_until(lambda: engine_idle(live_server), what="engine work of the cancelled stream to be dropped")


async def test_cancel_of_an_ended_stream_is_ignored(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await speak(client, "x", "Done soon.")
    await client.until_done("x")
    await client.send(Cancel(stream="x"))
    await speak(client, "y", "Still fine.")
    result = await client.until_done("y")
    assert result.done is not None and result.done.reason == "complete"
    assert client.loose_errors == [] and "x" not in {e.stream for e in client.results["y"].errors}
    assert not any(isinstance(f, Error) for f in client.frames)
    await client.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1garbage", ErrorCode.BAD_FRAME),
        (msgpack.packb([1, 2, 3]), ErrorCode.BAD_FRAME),
        (msgpack.packb({"stream": "a"}), ErrorCode.BAD_FRAME),
        (msgpack.packb({"type": "dance"}), ErrorCode.UNKNOWN_TYPE),
        (msgpack.packb({"type": "start", "stream": ""}), ErrorCode.INVALID_FIELD),
        (msgpack.packb({"type": "start", "stream": "a", "speed": 9.0}), ErrorCode.INVALID_FIELD),
        (msgpack.packb({"type": "start", "stream": "a", "sample_rate": 100}), ErrorCode.INVALID_FIELD),
        (msgpack.packb({"type": "text", "stream": "nope", "text": "hi"}), ErrorCode.UNKNOWN_STREAM),
        (msgpack.packb({"type": "start", "stream": "v", "voice": "nobody"}), ErrorCode.UNKNOWN_VOICE),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_survives(
    live_server: ServerProcess, frame: bytes, code: ErrorCode
) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.ws.send(frame)
    error = await client.error()
    assert error.code == code
    assert len(error.message) > 10
    await speak(client, "after", "Still here.")
    result = await client.until_done("after")
    assert result.done is not None and result.done.reason == "complete"
    await client.close()


async def test_a_text_message_is_a_bad_frame(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.ws.send('{"type": "start", "stream": "a"}')
    error = await client.error()
    assert error.code == ErrorCode.BAD_FRAME and "binary" in error.message
    await client.close()


async def test_stream_state_errors(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    limits = client.hello.limits
    # stream_exists: a second start of an active stream ends that stream with an error.
    await client.send(Start(stream="dup"))
    await client.send(Start(stream="dup"))
    error = await client.error()
    assert error.code == ErrorCode.STREAM_EXISTS and error.stream == "dup"
    dup = await client.until_done("dup")
    assert dup.done is not None and dup.done.reason == "error"
    # stream_closed: text after final.
    await speak(client, "closed", LONG_TEXT)
    await client.send(Text(stream="closed", text="more"))
    error = await client.error()
    assert error.code == ErrorCode.STREAM_CLOSED and error.stream == "closed"
    closed = await client.until_done("closed")
    assert closed.done is not None and closed.done.reason == "error"
    # too_many_streams
    for i in range(limits.max_streams):
        await client.send(Start(stream=f"m{i}"))
    await client.send(Start(stream="one-too-many"))
    # Text and cancel pipelined behind the refused start are ignored: the client has the start's error.
    await client.send(Text(stream="one-too-many", text="Hello", final=True))
    await client.send(Cancel(stream="one-too-many"))
    error = await client.error()
    assert error.code == ErrorCode.TOO_MANY_STREAMS
    for i in range(limits.max_streams):
        await client.send(Cancel(stream=f"m{i}"))
        cancelled = await client.until_done(f"m{i}")
        assert cancelled.done is not None and cancelled.done.reason == "cancelled"
    assert len(client.results["one-too-many"].errors) == 1
    # Until a start for the id succeeds: then it is an ordinary stream again.
    await client.send(Start(stream="one-too-many"))
    await client.send(Cancel(stream="one-too-many"))
    again = await client.until_done("one-too-many")
    assert again.done is not None and again.done.reason == "cancelled"
    # text_too_long
    await client.send(Start(stream="big"))
    await client.send(Text(stream="big", text="a" * (limits.max_text_bytes + 1)))
    error = await client.error()
    assert error.code == ErrorCode.TEXT_TOO_LONG and error.stream == "big"
    big = await client.until_done("big")
    assert big.done is not None and big.done.reason == "error"
    await client.close()


async def test_engine_failure_mid_stream_ends_only_that_stream(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="bad"))
    await client.send(Start(stream="good"))
    await client.send(Text(stream="good", text=SENTENCE + " " + SENTENCE, final=True))
    await client.send(
        Text(stream="bad", text="This part is fine. VOXWIRE_TEST_FAULT breaks here.", final=True)
    )
    bad = await client.until_done("bad")
    good = await client.until_done("good")
    assert bad.done is not None and bad.done.reason == "error"
    assert [e.code for e in bad.errors] == [ErrorCode.INTERNAL]
    assert "Traceback" not in bad.errors[0].message and "RuntimeError" not in bad.errors[0].message
    assert good.done is not None and good.done.reason == "complete"
    assert_contiguous(good)
    await client.close()


async def test_client_vanishing_mid_stream_frees_its_work(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await speak(client, "gone", LONG_TEXT)
    await client.until(lambda f: isinstance(f, Chunk))
    client.ws.transport.abort()  # no close handshake: the client just disappears
    await client.ws.wait_closed()
    wait_until(lambda: engine_idle(live_server), what="server counters back to zero")


async def test_a_client_that_never_reads_is_held_to_its_buffer() -> None:
    # Look-ahead unbounded, so the engine runs as fast as it can and only backpressure can stop it.
    with ServerProcess("--max-ahead-ms", "1000000", "--max-buffered-audio-ms", "3000") as server:
        # A small receive buffer and max_queue=1: the client stops reading the socket almost at once.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        client = await RecordingClient.open(server.ws_url, sock=sock, max_queue=1)
        text = " ".join([LONG_TEXT] * 4)  # about two minutes of speech
        await speak(client, "slow", text, sample_rate=48000)
        wait_until(lambda: server.metrics()["voxwire_engine_paused_streams"] >= 1, what="backpressure")
        made = server.metrics()["voxwire_audio_seconds_total"]
        assert made < 90.0  # the socket buffers' worth plus the limit, not the whole reply
        # Reading again releases it and nothing is lost.
        result = await client.until_done("slow")
        assert result.done is not None and result.done.reason == "complete"
        assert_contiguous(result)
        assert result.done.samples / 48000 > 60.0
        await client.close()


async def test_oversized_frame_closes_with_1009(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.ws.send(b"\x00" * (client.hello.limits.max_frame_bytes + 1))
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_after_1009_the_server_drains_what_the_client_still_sends(live_server: ServerProcess) -> None:
    """A message past the limit fails the connection with 1009, and the server keeps reading (and dropping)
    the rest of it before it closes its socket: a socket closed with unread data answers with a reset, which
    can destroy the close frame before the client reads it. A raw client declares a message far past the
    limit, reads the close frame and the server's half-close, and goes on sending what it declared: every
    send is taken (none meets a reset)."""
    url = urlsplit(live_server.ws_url)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=30) as raw:
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += raw.recv(4096)
        assert received.startswith(b"HTTP/1.1 101")
        declared = 64 << 20  # far past max_frame_bytes; masked binary frame, 64-bit length
        raw.sendall(bytes([0x82, 0xFF]) + declared.to_bytes(8, "big") + b"\x00\x00\x00\x00")
        while (chunk := raw.recv(65536)) != b"":  # the hello, then the close frame, then the half-close
            received += chunk
        assert re.search(rb"\x88[\x02-\x7d]\x03\xf1", received)  # a close frame with code 1009
        for _ in range(64):
            raw.sendall(b"\x00" * 65536)  # 4 MiB more of the declared message, all taken


async def test_health_and_metrics(live_server: ServerProcess) -> None:
    assert http_status(live_server.http_url + "/health") == 200
    steps = 'voxwire_engine_step_seconds_count{kind="windows"}'
    step_time = 'voxwire_engine_step_seconds_sum{kind="windows"}'
    first_audio = "voxwire_first_audio_seconds_count"
    before = live_server.metrics()
    client = await RecordingClient.open(live_server.ws_url)
    await speak(client, "m", "Every engine step is timed.")
    result = await client.until_done("m")
    assert result.done is not None and result.done.chunks >= 1
    chunks = result.done.chunks

    def counted() -> bool:
        after = live_server.metrics()
        return (
            after[steps] >= before.get(steps, 0.0) + chunks
            and after[step_time] > before.get(step_time, 0.0)
            and after[first_audio] >= before.get(first_audio, 0.0) + 1
        )

    wait_until(counted, what="the stream's engine steps and first audio in /metrics")


def test_the_server_leaves_no_onnxruntime_files_open(live_server: ServerProcess) -> None:
    """piper-tts imports onnxruntime, which would keep a device-id database under ~/.cache open."""
    assert live_server.proc is not None
    fd_dir = f"/proc/{live_server.proc.pid}/fd"
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(f"{fd_dir}/{fd}"))
        except FileNotFoundError:  # closed since listed
            continue
    assert any(t.startswith("socket:") for t in targets)  # the listening socket: we read the right process
    assert [t for t in targets if "onnxruntime" in t] == []


async def test_connection_limit_overloaded_and_sigterm_drains() -> None:
    with ServerProcess("--max-connections", "1", "--shutdown-grace-s", "30") as server:
        first = await RecordingClient.open(server.ws_url)
        await speak(first, "last", LONG_TEXT)
        await first.until(lambda f: isinstance(f, Chunk))
        async with connect(server.ws_url) as ws:  # the one connection is busy: no room to make
            frame = decode_server(await ws.recv())
            assert isinstance(frame, Error) and frame.code == ErrorCode.OVERLOADED
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        # SIGTERM with a stream in progress: the stream finishes, done is sent, close 1001, exit 0.
        server.signal(signal.SIGTERM)
        wait_until(
            lambda: http_status(server.http_url + "/health") != 200, what="the server to stop accepting"
        )
        await first.send(Start(stream="late"))
        error = await first.error()
        assert error.code == ErrorCode.SHUTTING_DOWN
        result = await first.until_done("last")
        assert result.done is not None and result.done.reason == "complete"
        assert_contiguous(result)
        with pytest.raises(ConnectionClosed) as closed:
            await first.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert await asyncio.to_thread(server.wait, 60) == 0


async def test_sigterm_cancels_what_the_grace_period_cannot_finish() -> None:
    with ServerProcess("--shutdown-grace-s", "0.5") as server:
        client = await RecordingClient.open(server.ws_url)
        await speak(client, "cut", LONG_TEXT + " " + LONG_TEXT)
        await client.until(lambda f: isinstance(f, Chunk))
        server.signal(signal.SIGTERM)
        result = await client.until_done("cut")
        assert result.done is not None and result.done.reason == "cancelled"
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert await asyncio.to_thread(server.wait, 60) == 0
