"""A coverage-guided fuzzer (atheris, libFuzzer) for the wire decoder and a connection's per-stream state.

Each input is cut into WebSocket messages at ``SEPARATOR``; the seed corpus (made when no corpus
directory is given) holds valid frames of every type to mutate. Every message goes through
``decode_client`` and ``decode_server``, which may raise ``ProtocolError`` and nothing else; a frame that
decodes must encode back to bytes that decode to the same frame; and the decoded client frames drive a
``StreamTable`` and a ``SentenceSegmenter`` per stream the way the server's connection does, checking their
bounds after every step. Any other exception, or a broken bound, is a crash that libFuzzer reports with the
input.

    pip install atheris
    python -m tests.fuzz.protocol -max_total_time=600 [corpus_dir]     # 10 minutes

Not part of the test suite (it runs until stopped); the hypothesis tests in tests/ run in CI.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from voxwire.protocol import (
        Cancel,
        ProtocolError,
        Start,
        StreamTable,
        Text,
        decode_client,
        decode_server,
        encode,
    )
    from voxwire.server.segmenter import DEFAULT_CONFIG, SentenceSegmenter

SEPARATOR = b"\xc1\xc1"
"""Never in valid msgpack (0xc1 is the one byte msgpack never uses)."""
MAX_STREAMS = 3
MAX_TEXT_BYTES = 200
REMEMBER = 8


def _same(a: object, b: object) -> bool:
    """Frame equality where a NaN field (never valid, but be safe) compares equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_round_trip(data: bytes) -> None:
    for decode in (decode_client, decode_server):
        try:
            frame = decode(data)
        except ProtocolError:
            continue
        again = decode(encode(frame))
        if not _same(again, frame):
            raise AssertionError(f"round trip changed the frame: {frame!r} -> {again!r}")


def drive(table: StreamTable[SentenceSegmenter], data: bytes, finish_next: bool) -> None:
    """One message through the connection's per-stream state."""
    try:
        frame = decode_client(data)
    except ProtocolError:
        return
    try:
        match frame:
            case Start():
                table.open(frame, SentenceSegmenter)
            case Text():
                segmenter = table.accept_text(frame)
                if segmenter is not None:
                    segments = segmenter.push(frame.text)
                    if frame.final or frame.flush:
                        segments += segmenter.flush()
                    if any(len(segment) > DEFAULT_CONFIG.max_segment_chars for segment in segments):
                        raise AssertionError("a segment over the cap")
                    if frame.final:
                        table.finish(frame.stream)
            case Cancel():
                if table.cancel(frame.stream) is not None:
                    table.finish(frame.stream)
    except ProtocolError as error:
        if frame.stream in table.active:
            table.finish(frame.stream)  # the server ends an active stream an error is tied to ...
        if isinstance(frame, Start) and table.owner(frame.stream) is None:
            table.refuse(frame.stream)  # ... and remembers a refused start
        if error.stream is not None and error.stream != frame.stream:
            raise AssertionError(f"an error names another stream: {error}") from error
    if finish_next and table.active:
        table.finish(table.active[0])  # a stream completing on its own
    if len(table) > MAX_STREAMS:
        raise AssertionError("more active streams than the limit")


def test_one_input(data: bytes) -> None:
    table: StreamTable[SentenceSegmenter] = StreamTable(MAX_STREAMS, MAX_TEXT_BYTES, REMEMBER)
    for message in data.split(SEPARATOR):
        check_round_trip(message)
        drive(table, message, finish_next=bool(len(message) & 1))


def seeds() -> list[bytes]:
    frames = [
        Start(stream="a"),
        Start(stream="b", voice="joe", sample_rate=16000, speed=1.5, words=True),
        Text(stream="a", text="Hello there, how are you? I am fine."),
        Text(stream="a", text="and more", flush=True),
        Text(stream="a", text="The end.", final=True),
        Cancel(stream="b"),
        Text(stream="zz", text="never started"),
    ]
    messages = [encode(frame) for frame in frames]
    return [SEPARATOR.join(messages), SEPARATOR.join(messages[:3]), messages[0]]


def main() -> None:
    args = sys.argv
    if not any(not arg.startswith("-") for arg in args[1:]):
        corpus = Path(tempfile.mkdtemp(prefix="voxwire-fuzz-"))
        for index, seed in enumerate(seeds()):
            (corpus / f"seed-{index}").write_bytes(seed)
        args = [*args, str(corpus)]
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
