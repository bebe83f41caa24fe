"""End to end: word timings in chunks and the heard text at cancel, from the real server (uvicorn, the real
bundled voice) to a real WebSocket client."""

from __future__ import annotations

import re

import pytest

from tests.ws_client import assert_contiguous
from voxwire.engine.words import text_words
from voxwire.loadtest.recorder import RecordingClient, StreamResult
from voxwire.protocol import Cancel, Chunk, Start, Text
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

TEXT = (
    'Meet me at 7:40, in front of the station. <break time="400ms"/>Dr. Smith owes me $12.50; '
    "bring it, and the U.S.A. maps, please."
)
STORY = (
    "Once upon a time, in a small village by the sea, there lived an old fisherman and his wife. "
    "Every morning he rowed out beyond the rocks and cast his nets into the cold grey water."
)


def written_words(text: str) -> list[str]:
    spoken = re.sub(r"<break[^>]*>", lambda tag: " " * len(tag[0]), text)
    return [text[start:end] for start, end in text_words(spoken)]


def timed(result: StreamResult) -> list[tuple[str, int, int, Chunk]]:
    return [(word, start, end, chunk) for chunk in result.chunks for word, start, end in chunk.words or ()]


def tokens(text: str) -> list[str]:
    """The text in pieces as an LLM's tokens arrive: words with the space before them, punctuation apart
    (a break tag arrives in pieces too)."""
    return re.findall(r"\s*\w+|\s*[^\w\s]+", text)


async def test_streamed_tokens_get_each_word_once_in_the_chunk_its_audio_starts(
    live_server: ServerProcess,
) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    assert client.hello.options is not None and client.hello.options.words is True
    await client.send(Start(stream="w", words=True, sample_rate=16000))
    pieces = tokens(TEXT)
    assert "".join(pieces) == TEXT
    for index, piece in enumerate(pieces):
        flush = piece == " owes"  # a flush mid-sentence cuts it there
        await client.send(Text(stream="w", text=piece, flush=flush, final=index == len(pieces) - 1))
    result = await client.until_done("w")
    assert result.done is not None and result.done.reason == "complete"
    assert_contiguous(result)
    words = timed(result)
    assert [word for word, *_ in words] == written_words(TEXT)
    previous_end = 0
    for word, start, end, chunk in words:
        assert chunk.offset <= start < chunk.offset + chunk.samples, word  # in the chunk it starts in
        assert previous_end <= start < end, word
        previous_end = end
    assert previous_end <= result.done.samples
    station, doctor = (next(w for w in words if w[0] == name) for name in ("station", "Dr"))
    assert doctor[1] - station[2] >= 0.4 * 16000  # the break is silence between words, in no word
    assert result.done.heard_chars == len(TEXT) and result.done.heard is None


async def test_a_cancel_with_the_playhead_gets_the_text_up_to_the_last_word_played(
    live_server: ServerProcess,
) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="c", words=True, sample_rate=24000))
    await client.send(Text(stream="c", text=STORY, final=True))
    while len(timed(client.results["c"])) < 6:
        await client.recv()
    words = timed(client.results["c"])
    fourth, fifth = words[3], words[4]
    played = (fourth[2] + fifth[2]) // 2  # past the fourth word's end, before the fifth's
    await client.send(Cancel(stream="c", played=played))
    result = await client.until_done("c")
    assert result.done is not None and result.done.reason == "cancelled"
    assert result.done.heard == "Once upon a time"
    assert result.done.heard_chars == len("Once upon a time")
    assert fourth[0] == "time"


async def test_without_words_chunks_carry_none_and_a_cancel_still_says_what_was_sent(
    live_server: ServerProcess,
) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    await client.send(Start(stream="n"))
    await client.send(Text(stream="n", text=STORY, final=True))
    while sum(c.samples for c in client.results["n"].chunks) < 3 * 22050:
        await client.recv()
    await client.send(Cancel(stream="n"))
    result = await client.until_done("n")
    assert all(chunk.words is None for chunk in result.chunks)
    assert result.done is not None and result.done.reason == "cancelled"
    heard = result.done.heard
    assert heard is not None and STORY.startswith(heard) and result.done.heard_chars == len(heard)
    # three seconds of this story are more than a few words, and less than all of it
    assert len(heard.split()) >= 4 and len(heard) < len(STORY)
    assert heard.split()[-1] in written_words(STORY)
