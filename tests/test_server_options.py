"""End to end with the real voice: the ``start`` options of docs/protocol.md (pace, encodings, pauses,
latency knobs) and what ``hello.options`` announces."""

from __future__ import annotations

import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.ws_client import assert_contiguous
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import Chunk, DoneReason, Encoding, ErrorCode, Pace, Start, Text
from voxwire.server.cli import main
from voxwire.server.process import ServerProcess

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

pytestmark = pytest.mark.slow

SENTENCE = "The quick brown fox jumps over the lazy dog."
HOP = 256  # the bundled voice's samples per latent frame
RATE = 22050


def longest_run(silent: np.ndarray) -> int:
    """The most consecutive True values."""
    padded = np.concatenate([[False], silent, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return int(np.max(edges[1::2] - edges[::2])) if len(edges) else 0


async def test_hello_announces_the_options(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    options = client.hello.options
    assert options is not None
    assert set(options.paces) == {"realtime", "asap"}
    assert set(options.encodings) == {"pcm16", "mulaw", "alaw", "f32"}
    assert options.breaks
    assert options.first_chunk_ms is not None and options.max_buffer_delay_ms is not None
    first = options.first_chunk_ms
    assert first.min == 186 and first.default == 186 and first.max == 1486  # 16, 16, 128 frames of audio
    assert options.max_buffer_delay_ms.min == 0 and options.max_buffer_delay_ms.default is None
    limits = client.hello.limits
    assert limits.idle_timeout_ms and limits.ping_interval_ms and limits.ping_timeout_ms
    await client.close()


@pytest.mark.parametrize("encoding", [Encoding.MULAW, Encoding.ALAW, Encoding.F32])
async def test_chunks_come_in_the_encoding_asked_for(live_server: ServerProcess, encoding: Encoding) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="s", sample_rate=8000, encoding=encoding))
    await client.send(Text(stream="s", text=SENTENCE, final=True))
    result = await client.until_done("s")
    assert result.done is not None and result.done.reason == DoneReason.COMPLETE
    assert_contiguous(result)  # offsets and done.samples count samples, not bytes
    assert all(c.encoding == encoding and c.sample_rate == 8000 for c in result.chunks)
    audio = b"".join(c.audio for c in result.chunks)
    assert len(audio) == result.done.samples * encoding.sample_bytes
    if encoding is Encoding.F32:
        pcm = np.frombuffer(audio, "<f4") * 32768
        assert np.abs(pcm).max() <= 32768
    else:
        decode = audioop.ulaw2lin if encoding is Encoding.MULAW else audioop.alaw2lin
        pcm = np.frombuffer(decode(audio, 2), np.int16).astype(np.float32)
    assert np.sqrt(np.mean(pcm**2)) > 300  # speech, not silence or noise-free garbage
    await client.close()


@pytest.mark.parametrize("rate", [RATE, 16000])
async def test_a_break_split_across_frames_is_exact_silence(live_server: ServerProcess, rate: int) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="s", sample_rate=rate))
    for piece in ["Hello there. <bre", 'ak time="7', '00ms"/', "> How are you?"]:
        await client.send(Text(stream="s", text=piece))
    await client.send(Text(stream="s", text="", final=True))
    result = await client.until_done("s")
    assert result.done is not None and result.done.reason == DoneReason.COMPLETE
    pcm = result.pcm()
    if rate == RATE:
        run = longest_run(pcm == 0)
        assert run >= round(0.7 * RATE)  # the pause, to the sample (plus any silence the voice made)
    else:  # resampled: the resampler dithers silence by one step, and its filter reaches into each end
        run = longest_run(np.abs(pcm) <= 1)
        assert run >= round(0.68 * rate)
    assert run < 0.7 * rate + 0.25 * rate
    await client.close()


async def test_a_malformed_break_fails_the_stream_with_invalid_field(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="s"))
    await client.send(Text(stream="s", text='Hi. <break time="later"/> there.', final=True))
    result = await client.until_done("s")
    assert result.errors and result.errors[0].code == ErrorCode.INVALID_FIELD
    assert "break" in result.errors[0].message
    assert result.done is not None and result.done.reason == DoneReason.ERROR
    await client.close()


async def test_first_chunk_ms_sets_the_first_chunk(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    options = client.hello.options
    assert options is not None and options.first_chunk_ms is not None
    sizes = {}
    for stream, ms in (("min", options.first_chunk_ms.min), ("default", None), ("372", 372)):
        await client.send(Start(stream=stream, first_chunk_ms=ms))
        await client.send(Text(stream=stream, text=SENTENCE, final=True))
        result = await client.until_done(stream)
        sizes[stream] = [chunk.samples for chunk in result.chunks[:2]]
    # The chunk after a small first one is twice as large (the ramp up to steady chunks of 64 frames).
    assert sizes == {
        "min": [16 * HOP, 32 * HOP],
        "default": [16 * HOP, 32 * HOP],
        "372": [32 * HOP, 64 * HOP],
    }
    await client.send(Start(stream="big", first_chunk_ms=options.first_chunk_ms.max + 1))
    error = await client.error()
    assert error.code == ErrorCode.INVALID_FIELD and error.stream == "big"
    assert "first_chunk_ms" in error.message
    await client.close()


async def test_max_buffer_delay_speaks_text_that_has_no_sentence_end(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="s", max_buffer_delay_ms=100))
    await client.send(Text(stream="s", text="I was thinking that we could perhaps go"))  # no end, no flush
    first = await client.until(lambda f: isinstance(f, Chunk) and f.stream == "s")
    assert isinstance(first, Chunk)
    await client.send(Text(stream="s", text=" home.", final=True))
    result = await client.until_done("s")
    assert result.done is not None and result.done.reason == DoneReason.COMPLETE
    await client.send(Start(stream="t", max_buffer_delay_ms=10_001))  # over this server's bound
    error = await client.error()
    assert error.code == ErrorCode.INVALID_FIELD and error.stream == "t"
    await client.close()


async def test_an_asap_stream_is_spoken_whole(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="fast", pace=Pace.ASAP))
    await client.send(Start(stream="live"))
    await client.send(Text(stream="fast", text=f"{SENTENCE} {SENTENCE} {SENTENCE}", final=True))
    await client.send(Text(stream="live", text=SENTENCE, final=True))
    for stream in ("fast", "live"):
        result = await client.until_done(stream)
        assert result.done is not None and result.done.reason == DoneReason.COMPLETE
        assert_contiguous(result)
    await client.close()


@pytest.mark.parametrize("pace", ["asap", "realtime"])
def test_voxwire_say_speaks_through_a_server_at_either_pace(
    live_server: ServerProcess, tmp_path: Path, pace: str
) -> None:
    out = tmp_path / "said.wav"
    argv = ["say", SENTENCE, "-o", str(out), "--server", live_server.ws_url, "--pace", pace]
    assert main(argv) == 0
    with wave.open(str(out)) as wav:
        assert wav.getframerate() == RATE and wav.getnframes() > RATE  # over a second of speech
    assert main(["say", "Hi.", "-o", str(out), "--server", live_server.ws_url, "--voice", "nobody"]) == 1
