"""Fuzz the live server: over 20,000 malformed, mutated and misordered frames on 8 concurrent connections.

Two kinds of input, each on every connection:

- **Garbage** (no stream is ever started on these connections): random bytes, truncated and mutated msgpack,
  wrong types in every field, huge numbers, deep nesting around msgpack's 1024-level stack, containers
  around the decoder's 4096-item cap, large values just under the frame limit, binary where text belongs,
  invalid UTF-8, text WebSocket messages, fragmented messages. The expected answer to each frame is exactly
  one ``error``: its code is stated by the generator for the hand-made cases, and computed by
  ``protocol.decode_client`` for the random ones (the codec has its own unit tests; here we check that the
  server wires it up and answers every frame). Frames that happen to decode into a valid ``start`` are not
  sent.
- **Misordered valid frames**, driven by a small model of the spec's stream rules (text before start,
  cancel twice, start twice, text after final, reuse after done, errors tied to an active stream, too many
  streams, text too long). The server's replies must match the model exactly, in order.

Frames are pipelined: a batch goes out, then the expected number of replies is read and matched one to one.
The replies about one stream id come back in the order its frames were sent (the server handles one frame
at a time), so matching is exact per stream id, and a reply too many shows up as a mismatch in the next
batch. Across stream ids the order is the server's: an error about an id waits behind that id's frames still
queued (the chunks and done of a stream that completed), so it may arrive after a later error about another.

The run has two parts: a short one whose misordered frames include real text (so chunks interleave with the
replies, and the engine warms up), then 20,000+ frames without speech, over which the server's RSS is
measured. Then the frame size limit (1009), a non-UTF-8 text message (1007), and a normal stream.
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from tests.ws_client import assert_contiguous, http_status, wait_until
from voxwire.loadtest.recorder import RecordingClient
from voxwire.protocol import (
    Cancel,
    Chunk,
    Done,
    Error,
    ErrorCode,
    Hello,
    ProtocolError,
    ServerFrame,
    Start,
    Text,
    decode_client,
    decode_server,
    encode,
)
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

SEED = 20240611
CONNECTIONS = 8
GARBAGE_FRAMES = 2000
SEQUENCE_FRAMES = 600
"""Per connection, in the part without speech (RSS is measured over it): 8 x 2600 frames."""
GARBAGE_WITH_SPEECH = 200
SEQUENCE_WITH_SPEECH = 300
"""Per connection, in the part with real text."""
GARBAGE_BATCH = 100
REPLY_TIMEOUT_S = 60.0
RSS_GROWTH_LIMIT_MIB = 32
"""Nothing a bad frame brings should stay: it is decoded, answered and dropped, and a connection's stream
table goes when it closes. The measured part sends ~60 MiB, so keeping the frames (or what they decode to)
would add more than this. Measured over that part on a warmed-up server: +0 to +8 MiB (allocator slack, in
steps of ~6 MiB), so 32 MiB leaves room for noise. It catches gross retention, not a leak of a few bytes
per frame (20,000 frames x 100 bytes is only 2 MiB)."""
SENTINEL = "~sentinel~"
"""Never started: a ``text`` for it is answered ``unknown_stream``, which marks the end of a batch."""

FIELD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 7, 2**31, 2**32, 2**63 - 1, -(2**63), 2**64 - 1, 0.0, -0.0, 0.49, 1.5, 2.01,
    1e308, -1e308, math.inf, -math.inf, math.nan, "", "x", "start", "text", "a" * 65, "\x00", "🎙" * 64,
    b"", b"start", b"\xff" * 8, [], [1, 2], {}, {"type": "start"}, msgpack.ExtType(5, b"x"),
    msgpack.Timestamp(0, 1),
]  # fmt: skip
"""Values for every field, most of them wrong for it (the ones that happen to be valid decode to a frame)."""
HUGE_NUMBERS: list[Any] = [2**63, -(2**63), 2**64 - 1, math.inf, -math.inf, math.nan, 1e308, -1e308]
INVALID_UTF8 = [
    b"\xff",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xe2\x82",
    b"a\x80b",
    b"\xf4\x90\x80\x80",
]
"""Lone 0xff, an overlong '/', lone surrogates as UTF-8 (they cannot be a msgpack str otherwise), a cut
sequence, a stray continuation byte, a code point above U+10FFFF."""
VALID_ODD_IDS = [
    "\x00",
    "\u200b",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "e\u0301",
    "\u202eabc",
    "🎙" * 64,
    "a" * 64,
]
"""Valid stream ids (1 to 64 code points) that are hard on naive code: NUL, zero-width, BOM, noncharacters,
combining marks, right-to-left override, 64 astral characters (256 UTF-8 bytes)."""


@dataclass(frozen=True)
class Case:
    """One WebSocket message to send: bytes (binary), str (text message) or a list of bytes (fragments)."""

    payload: bytes | str | list[bytes]
    code: ErrorCode | None = None
    """The code the server must answer with; None for random input, where the codec decides."""

    def __repr__(self) -> str:  # frames reach 256 KiB: show their start in assertion messages
        payload = self.payload
        head = [p[:40] for p in payload[:3]] if isinstance(payload, list) else payload[:80]
        return f"Case({head!r}, {len(payload)} long, code={self.code})"


@dataclass(frozen=True)
class Reply:
    """A non-chunk frame the server must send: an error (``what`` is its code) or a done (its reason)."""

    kind: str
    what: str
    stream: str | None


def _error(code: ErrorCode, stream: str | None) -> Reply:
    return Reply("error", str(code), stream)


def _done(reason: str, stream: str) -> Reply:
    return Reply("done", reason, stream)


def _reply_of(frame: ServerFrame) -> Reply:
    if isinstance(frame, Error):
        return _error(frame.code, frame.stream)
    assert isinstance(frame, Done), f"unexpected frame {frame!r}"
    return _done(str(frame.reason), frame.stream)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


# -- garbage --------------------------------------------------------------------------------------------


class GarbageGenerator:
    """Seeded generator of bad frames, one category per method; ``next`` picks one at random by weight."""

    def __init__(self, rng: random.Random, hello: Hello) -> None:
        self.rng = rng
        self.limits = hello.limits
        self.voice = hello.voices[0].id
        self.categories: list[tuple[Callable[[], Case], int]] = [
            (self.random_bytes, 12),
            (self.truncated, 12),
            (self.mutated, 20),
            (self.trailing_bytes, 3),
            (self.wrong_field_type, 20),
            (self.huge_number, 5),
            (self.deep_nesting, 2),
            (self.big_container, 2),
            (self.big_value, 1),
            (self.binary_for_text, 4),
            (self.invalid_utf8, 5),
            (self.odd_unicode_id, 4),
            (self.non_string_key, 3),
            (self.not_a_frame, 4),
            (self.text_message, 3),
            (self.fragmented, 2),
        ]
        self._choices, weights = zip(*self.categories, strict=True)
        self._weights = list(weights)

    def next(self) -> Case:
        return self.rng.choices(self._choices, self._weights)[0]()

    def valid_map(self) -> dict[str, Any]:
        rng = self.rng
        stream = rng.choice(["s", "t1", *VALID_ODD_IDS])
        kind = rng.choice(["start", "text", "cancel"])
        frame: dict[str, Any] = {"type": kind, "stream": stream}
        if kind == "start":
            frame.update(
                voice=self.voice, sample_rate=rng.choice([16000, 22050, 48000]), speed=1.0, words=True
            )
        elif kind == "text":
            frame.update(text=rng.choice(["Hello there.", "", "ünïcödé 🎙"]), final=rng.random() < 0.5)
        return frame

    def random_bytes(self) -> Case:
        size = self.rng.choice([1, 2, 3, 5, 8, 16, 64, 300, 4096])
        return Case(self.rng.randbytes(size))

    def truncated(self) -> Case:
        data = pack(self.valid_map())
        return Case(data[: self.rng.randrange(1, len(data))], ErrorCode.BAD_FRAME)

    def mutated(self) -> Case:
        data = bytearray(pack(self.valid_map()))
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            action = rng.randrange(4)
            if action == 0:
                data[at] ^= 1 << rng.randrange(8)
            elif action == 1:
                data[at] = rng.randrange(256)
            elif action == 2:
                data.insert(at, rng.randrange(256))
            elif len(data) > 1:
                del data[at]
        return Case(bytes(data))

    def trailing_bytes(self) -> Case:
        return Case(pack(self.valid_map()) + self.rng.randbytes(self.rng.randint(1, 8)), ErrorCode.BAD_FRAME)

    def wrong_field_type(self) -> Case:
        frame = self.valid_map()
        frame[self.rng.choice([*frame, "final", "flush", "words", "voice"])] = self.rng.choice(FIELD_VALUES)
        return Case(pack(frame))

    def huge_number(self) -> Case:
        rng = self.rng
        name = rng.choice(["sample_rate", "speed"])
        value = rng.choice(HUGE_NUMBERS)
        head = pack({"type": "start", "stream": "n", name: 0})[:-1]  # everything but the value
        if isinstance(value, float) and not math.isfinite(value) and rng.random() < 0.5:
            encoded = b"\xca" + struct.pack(">f", value)  # the float32 form
        else:
            encoded = pack(value)
        return Case(head + encoded, ErrorCode.INVALID_FIELD)

    def deep_nesting(self) -> Case:
        rng = self.rng
        depth = rng.choice([1023, 1024, 1025, 5000, 200_000])
        level = b"\x91" if rng.random() < 0.5 else b"\x81\xa1k"  # [x] or {"k": x}
        nested = level * depth + b"\xc0"
        if len(nested) > self.limits.max_frame_bytes - 64:
            nested = level * ((self.limits.max_frame_bytes - 64) // len(level)) + b"\xc0"
        if rng.random() < 0.5:
            return Case(nested, ErrorCode.BAD_FRAME)  # too deep, or a list / a map without a type
        # Inside a field the server ignores: fine up to msgpack's stack, a bad frame beyond it.
        head = pack({"type": "text", "stream": "deep", "text": "", "x": 0})[:-1]
        too_deep = depth + 1 > 1024
        return Case(head + nested, ErrorCode.BAD_FRAME if too_deep else ErrorCode.UNKNOWN_STREAM)

    def big_container(self) -> Case:
        rng = self.rng
        items = rng.choice([4096, 4097, 2**32 - 1])
        if items == 2**32 - 1:  # a header that claims four billion items, with none behind it
            return Case(pack({"type": "text", "stream": "big", "text": ""})[:-1] + b"\xdd\xff\xff\xff\xff")
        if rng.random() < 0.5:
            frame = {"type": "text", "stream": "big", "text": "", "x": list(range(items))}
        else:
            frame = {f"k{i}": i for i in range(items - 3)} | {"type": "text", "stream": "big", "text": ""}
        return Case(pack(frame))

    def big_value(self) -> Case:
        room = self.limits.max_frame_bytes - 64
        size = self.rng.choice([room // 2, room])
        if self.rng.random() < 0.5:
            frame = {"type": "text", "stream": "big", "text": "", "x": b"\x00" * size}
            return Case(pack(frame), ErrorCode.UNKNOWN_STREAM)
        return Case(pack({"type": "text", "stream": "big", "text": "a" * size}), ErrorCode.UNKNOWN_STREAM)

    def binary_for_text(self) -> Case:
        frame, code = self.rng.choice(
            [
                ({"type": b"text", "stream": "b", "text": "hi"}, ErrorCode.BAD_FRAME),
                ({"type": "text", "stream": b"b", "text": "hi"}, ErrorCode.INVALID_FIELD),
                ({"type": "text", "stream": "b", "text": b"hi"}, ErrorCode.INVALID_FIELD),
                ({"type": "start", "stream": "b", "voice": b"joe"}, ErrorCode.INVALID_FIELD),
            ]
        )
        return Case(pack(frame), code)

    def invalid_utf8(self) -> Case:
        bad = self.rng.choice(INVALID_UTF8)
        raw = b"\xd9" + bytes([len(bad)]) + bad  # str8 holding bytes that are not UTF-8
        where = self.rng.randrange(4)
        if where == 0:
            data = b"\x82\xa4type" + raw + b"\xa6stream\xa1s"
        elif where == 1:
            data = b"\x82\xa4type\xa6cancel\xa6stream" + raw
        elif where == 2:
            data = b"\x83\xa4type\xa4text\xa6stream\xa1s\xa4text" + raw
        else:
            data = b"\x82\xa4type\xa6cancel" + raw + b"\xa1s"  # a key
        return Case(data, ErrorCode.BAD_FRAME)

    def odd_unicode_id(self) -> Case:
        rng = self.rng
        stream = rng.choice(VALID_ODD_IDS)
        if rng.random() < 0.25:
            return Case(pack({"type": "cancel", "stream": "🎙" * 65}), ErrorCode.INVALID_FIELD)
        frame = {"type": "text", "stream": stream, "text": "\x00\ufeff\U0010ffff"}
        return Case(pack(frame), ErrorCode.UNKNOWN_STREAM)

    def non_string_key(self) -> Case:
        key = self.rng.choice([b"\x01", b"\xc0", b"\xcb" + struct.pack(">d", 1.5), b"\xc4\x04type", b"\x90"])
        return Case(b"\x83\xa4type\xa6cancel\xa6stream\xa1s" + key + b"\x01", ErrorCode.BAD_FRAME)

    def not_a_frame(self) -> Case:
        rng = self.rng
        if rng.random() < 0.2:
            # Empty; a timestamp (ext -1) of a length msgpack refuses; an ext type; a nil.
            return Case(rng.choice([b"", b"\xc7\x03\xff\x00\x00\x00", b"\xd4\x2a\x00", b"\xc0"]))
        value = rng.choice(
            [{}, {"type": None}, {"type": 1}, {"type": ["start"]}, {"type": "START"}, {"type": ""},
             {"type": "hello"}, {"type": "done", "stream": "s"}, {"type": "start\x00"}, [], "start", 1,
             b"start", {"type": msgpack.ExtType(1, b"start")}]
        )  # fmt: skip
        return Case(pack(value))

    def text_message(self) -> Case:
        text = self.rng.choice(['{"type": "start", "stream": "a"}', "", "start", "🎙" * 100, "\x00"])
        return Case(text, ErrorCode.BAD_FRAME)

    def fragmented(self) -> Case:
        inner = self.next()
        payload = inner.payload
        if not isinstance(payload, bytes) or len(payload) < 2:
            return inner
        cuts = sorted(self.rng.sample(range(1, len(payload)), min(len(payload) - 1, self.rng.randint(1, 4))))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        return Case(pieces, inner.code)


def codec_reply(case: Case, voice: str, refused: set[str]) -> Reply | None:
    """The reply the spec asks for on a connection with no streams; None for a frame not to send: one that
    would start a stream, or text or cancel for an id whose start was refused (ignored: no reply).
    ``refused`` collects the ids of refused starts."""
    payload = b"".join(case.payload) if isinstance(case.payload, list) else case.payload
    try:
        frame = decode_client(payload)
    except ProtocolError as error:
        return _error(error.code, error.stream)
    if isinstance(frame, Start):
        if frame.voice in {None, voice}:
            return None
        refused.add(frame.stream)
        return _error(ErrorCode.UNKNOWN_VOICE, frame.stream)
    if frame.stream in refused or isinstance(frame, Cancel):
        return None  # ignored, with no reply: a cancel of an id never started, or anything behind a refusal
    return _error(ErrorCode.UNKNOWN_STREAM, frame.stream)


def per_stream(replies: list[Reply]) -> dict[str | None, list[Reply]]:
    """Replies grouped by stream id, in their order: what the protocol orders."""
    groups: dict[str | None, list[Reply]] = {}
    for reply in replies:
        groups.setdefault(reply.stream, []).append(reply)
    return groups


async def recv_frame(client: RecordingClient) -> ServerFrame:
    return decode_server(await asyncio.wait_for(client.ws.recv(), REPLY_TIMEOUT_S))


@dataclass
class Tally:
    frames_sent: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped_valid: int = 0
    events: Counter[str] = field(default_factory=Counter)
    """Misorders seen in the sequence phase (to check that the run covered each)."""
    longest_message: int = 0
    chunks: int = 0

    def saw(self, frame: ServerFrame) -> None:
        self.chunks += isinstance(frame, Chunk)
        if isinstance(frame, Error):
            self.errors[str(frame.code)] += 1
            self.longest_message = max(self.longest_message, len(frame.message))
            assert frame.message.strip(), frame


async def fuzz_garbage(client: RecordingClient, rng: random.Random, frames: int, tally: Tally) -> set[str]:
    """Send ``frames`` garbage frames and check each reply; return the ids of the starts it got refused."""
    generator = GarbageGenerator(rng, client.hello)
    voice = client.hello.voices[0].id
    refused: set[str] = set()
    sent = 0
    while sent < frames:
        batch: list[tuple[Case, Reply]] = []
        while len(batch) < GARBAGE_BATCH:
            case = generator.next()
            expected = codec_reply(case, voice, refused)
            if expected is None:
                tally.skipped_valid += 1
                continue
            if case.code is not None:
                assert expected.what == case.code, (case, expected)  # the generator and the codec agree
            batch.append((case, expected))
        for case, _ in batch:
            await client.ws.send(case.payload)
        for case, expected in batch:
            frame = await recv_frame(client)
            tally.saw(frame)
            assert _reply_of(frame) == expected, (case, frame)
        sent += len(batch)
    tally.frames_sent += sent
    return refused


# -- misordered valid frames ----------------------------------------------------------------------------

MISORDERS = (
    "text before start",
    "start twice",
    "cancel after done",
    "text after final",
    "text after done",
    "reuse after done",
    "error ends an active stream",
    "text too long",
    "text after a refused start",
)
STREAM_IDS = ["a", "b", "c", "d", "e", "ü", "\u200b", "🎙" * 64]
SPOKEN = ["Hello there", "One two three", "Good morning"]


class StreamModel:
    """The spec's stream rules for one connection, for valid frames in any order.

    Streams are active (started, not yet done) or ended (done sent; the server remembers the id, so text is
    ``stream_closed`` and cancel is ignored) or unknown; text and cancel for an id whose last start was
    refused are ignored. ``active`` maps each active stream to whether it was
    given real text (then it may send chunks until its done).
    """

    def __init__(self, max_streams: int, refused: set[str]) -> None:
        self.max_streams = max_streams
        self.active: dict[str, bool] = {}
        self.ended: set[str] = set()
        self.refused = set(refused)
        """Ids whose last start was refused: their text and cancels are ignored until a start succeeds."""

    def end(self, stream: str) -> None:
        del self.active[stream]
        self.ended.add(stream)

    def fail(self, code: ErrorCode, stream: str) -> list[Reply]:
        """An error naming ``stream`` ends it with ``done`` reason ``error`` when it is active; an unknown
        frame type ends nothing (a newer client's frame)."""
        if stream in self.active and code is not ErrorCode.UNKNOWN_TYPE:
            self.end(stream)
            return [_error(code, stream), _done("error", stream)]
        return [_error(code, stream)]

    def start(self, stream: str, known_voice: bool) -> list[Reply] | None:
        """The refusal, or None when the server should admit it (or answer ``overloaded``)."""
        refusal = None
        if not known_voice:
            refusal = self.fail(ErrorCode.UNKNOWN_VOICE, stream)
        elif stream in self.active:
            refusal = self.fail(ErrorCode.STREAM_EXISTS, stream)
        elif len(self.active) >= self.max_streams:
            refusal = [_error(ErrorCode.TOO_MANY_STREAMS, stream)]
        if refusal is not None:
            self.refused.add(stream)
        return refusal

    def admitted(self, stream: str) -> None:
        self.active[stream] = False
        self.refused.discard(stream)

    def overloaded(self, stream: str) -> None:
        self.ended.add(stream)
        self.refused.add(stream)

    def text(self, stream: str) -> list[Reply]:
        if stream in self.active or stream in self.refused:
            return []
        code = ErrorCode.STREAM_CLOSED if stream in self.ended else ErrorCode.UNKNOWN_STREAM
        return [_error(code, stream)]

    def cancel(self, stream: str) -> list[Reply]:
        if stream in self.active:
            self.end(stream)
            return [_done("cancelled", stream)]
        return []  # ended, refused or never started: ignored, with no reply


@dataclass
class Pending:
    """The last op of a batch, whose answer depends on timing: the outcomes allowed, and what to wait for."""

    stream: str
    outcomes: list[tuple[list[Reply], list[Reply]]]
    """Each outcome: the control replies (in order, after the batch's others) and the completions."""
    wait_for: str | None = None
    """Read on past the sentinel until a "done" or a "chunk" of ``stream`` has come."""
    then: Callable[[int], None] = lambda _: None
    """Updates the model with the index of the outcome that happened."""


Op: TypeAlias = tuple[list[bytes], list[Reply], Pending | None]
"""What an op of the sequence fuzzer sends, the replies it must get, and its pending end (if it has one)."""


class ChunkTracker:
    """Guarantees 1 and 2 for chunks of spoken streams: in order, contiguous, none after done."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[int, int]] = {}

    def started(self, stream: str) -> None:
        self.open[stream] = (0, 0)

    def chunk(self, chunk: Chunk) -> None:
        assert chunk.stream in self.open, f"chunk for {chunk.stream!r}, which is not active"
        count, samples = self.open[chunk.stream]
        assert (chunk.seq, chunk.offset) == (count, samples), chunk
        self.open[chunk.stream] = (count + 1, samples + chunk.samples)

    def done(self, done: Done) -> None:
        assert done.stream in self.open, f"done for {done.stream!r}, which is not active"
        assert (done.chunks, done.samples) == self.open.pop(done.stream), done


class SequenceFuzzer:
    def __init__(
        self, client: RecordingClient, rng: random.Random, tally: Tally, *, spoken: bool, refused: set[str]
    ) -> None:
        self.client = client
        self.rng = rng
        self.tally = tally
        self.spoken = spoken
        """Whether to send real text (engine work, chunks) as well."""
        limits = client.hello.limits
        self.max_text_bytes = limits.max_text_bytes
        self.model = StreamModel(limits.max_streams, refused)
        self.tracker = ChunkTracker()
        self.voice = client.hello.voices[0].id
        self.sample_rates = list(client.hello.sample_rates)

    async def run(self, frames: int) -> None:
        sent = 0
        while sent < frames:
            sent += await self.round()
        sent += await self.exchange(
            [encode(Cancel(stream=s)) for s in self.model.active], self.cancel_all(), None
        )
        assert not self.tracker.open
        self.tally.frames_sent += sent

    def cancel_all(self) -> list[Reply]:
        return [reply for stream in list(self.model.active) for reply in self.model.cancel(stream)]

    async def round(self) -> int:
        frames: list[bytes] = []
        expected: list[Reply] = []
        pending: Pending | None = None
        ops = [self.op_start, self.op_text, self.op_spoken, self.op_final, self.op_cancel, self.op_invalid]
        weights = [24, 16, 4 if self.spoken else 0, 8, 24, 14]
        for _ in range(self.rng.randint(1, 24)):
            op = self.rng.choices(ops, weights)[0]
            frame_bytes, replies, pending = op(self.rng.choice(STREAM_IDS))
            frames += frame_bytes
            expected += replies
            if pending is not None:
                break
        return await self.exchange(frames, expected, pending)

    async def exchange(self, frames: list[bytes], expected: list[Reply], pending: Pending | None) -> int:
        """Send the frames and a sentinel; read up to the sentinel's error (and the pending stream's done)."""
        for frame in [*frames, encode(Text(stream=SENTINEL, text=""))]:
            await self.client.ws.send(frame)
        control: list[Reply] = []
        completed: list[Reply] = []
        chunks_of: set[str] = set()
        sentinel_seen = False
        outcomes = pending.outcomes if pending is not None else [([], [])]

        def matches() -> list[int]:
            return [
                i
                for i, (more, done) in enumerate(outcomes)
                if (per_stream(control), completed) == (per_stream(expected + more), done)
            ]

        # Up to the sentinel's error and the pending stream's done, and on until the replies match an
        # outcome: an error about an id can come after the sentinel when that id's frames were queued.
        while not (sentinel_seen and self.waited(pending, control + completed, chunks_of) and matches()):
            try:
                frame = await recv_frame(self.client)
            except TimeoutError:
                raise AssertionError(
                    f"replies {control} + {completed} match none of {expected} + {outcomes}"
                ) from None
            self.tally.saw(frame)
            if isinstance(frame, Chunk):
                self.tracker.chunk(frame)
                chunks_of.add(frame.stream)
                continue
            if isinstance(frame, Done):
                self.tracker.done(frame)
            reply = _reply_of(frame)
            if reply == _error(ErrorCode.UNKNOWN_STREAM, SENTINEL):
                assert not sentinel_seen
                sentinel_seen = True
            elif reply.what == "complete":
                completed.append(reply)
            else:
                control.append(reply)
        found = matches()
        if pending is not None:
            pending.then(found[0])
        return len(frames) + 1

    @staticmethod
    def waited(pending: Pending | None, replies: list[Reply], chunks_of: set[str]) -> bool:
        if pending is None or pending.wait_for is None:
            return True
        if pending.wait_for == "chunk":
            return pending.stream in chunks_of
        return any(r.kind == "done" and r.stream == pending.stream for r in replies)

    def op_start(self, stream: str) -> Op:
        rng = self.rng
        voice = rng.choices([None, self.voice, "nobody"], [8, 1, 1])[0]
        start = Start(
            stream=stream,
            voice=voice,
            sample_rate=rng.choice([None, *self.sample_rates]),
            speed=rng.choice([None, 0.5, 1.0, 2.0]),
            words=rng.random() < 0.5,
        )
        refusal = self.model.start(stream, voice != "nobody")
        if refusal is not None:
            if refusal[0].what == ErrorCode.STREAM_EXISTS:
                self.tally.events["start twice"] += 1
            return [encode(start)], refusal, None
        reused = stream in self.model.ended

        def admitted(outcome: int) -> None:
            if outcome == 0:
                self.tally.events["reuse after done"] += reused
                self.model.admitted(stream)
                self.tracker.started(stream)
            else:
                self.model.overloaded(stream)
                self.tally.events["overloaded"] += 1

        outcomes = [([], []), ([_error(ErrorCode.OVERLOADED, stream)], [])]
        return [encode(start)], [], Pending(stream, outcomes, then=admitted)

    def op_text(self, stream: str) -> Op:
        text = Text(stream=stream, text=self.rng.choice(["", " ", "\n\n"]), flush=self.rng.random() < 0.5)
        return [encode(text)], self.refused_text(stream), None

    def refused_text(self, stream: str) -> list[Reply]:
        replies = self.model.text(stream)
        if stream in self.model.refused:
            self.tally.events["text after a refused start"] += 1
        elif replies:
            self.tally.events[
                "text before start" if replies[0].what == ErrorCode.UNKNOWN_STREAM else "text after done"
            ] += 1
        return replies

    def op_spoken(self, stream: str) -> Op:
        """Real text, spoken at once (flush); half the time the batch ends and waits for its first chunk,
        so that chunks interleave with the replies to later frames."""
        text = encode(Text(stream=stream, text=self.rng.choice(SPOKEN), flush=True))
        if stream not in self.model.active:
            return [text], self.refused_text(stream), None
        first_time = not self.model.active[stream]
        self.model.active[stream] = True
        if first_time and self.rng.random() < 0.5:
            return [text], [], Pending(stream, [([], [])], wait_for="chunk")
        return [text], [], None

    def op_final(self, stream: str) -> Op:
        final = encode(Text(stream=stream, text=self.rng.choice(["", " ... "]), final=True))
        if stream not in self.model.active:
            return [final], self.refused_text(stream), None
        if self.model.active[stream]:
            return self.op_cancel(stream)  # spoken: no stream is spoken to its end here (engine time)
        self.model.end(stream)
        if self.rng.random() < 0.5:
            return [final], [], Pending(stream, [([], [_done("complete", stream)])], wait_for="done")
        # Text right behind final: refused as stream_closed; if the stream (with nothing to say) completes
        # first, the error is a loose one, else it ends the stream with done reason error.
        self.tally.events["text after final"] += 1
        more = encode(Text(stream=stream, text="more"))
        closed = _error(ErrorCode.STREAM_CLOSED, stream)
        outcomes = [([closed, _done("error", stream)], []), ([closed], [_done("complete", stream)])]
        return [final, more], [], Pending(stream, outcomes, wait_for="done")

    def op_cancel(self, stream: str) -> Op:
        if stream in self.model.ended and stream not in self.model.active:
            self.tally.events["cancel after done"] += 1
        return [encode(Cancel(stream=stream))], self.model.cancel(stream), None

    def op_invalid(self, stream: str) -> Op:
        """A frame naming ``stream`` with a bad field or type: refused, ending the stream if active."""
        rng = self.rng
        choice = rng.randrange(5)
        if choice == 0:
            frame, code = {"type": "text", "stream": stream, "text": 5}, ErrorCode.INVALID_FIELD
        elif choice == 1:
            frame, code = {"type": "start", "stream": stream, "speed": 9.0}, ErrorCode.INVALID_FIELD
        elif choice == 2:
            frame, code = (
                {"type": "text", "stream": stream, "text": "x", "final": "yes"},
                ErrorCode.INVALID_FIELD,
            )
        elif choice == 3:
            frame, code = {"type": "pause", "stream": stream}, ErrorCode.UNKNOWN_TYPE
        else:
            if stream not in self.model.active:
                return self.op_text(stream)
            self.tally.events["text too long"] += 1
            text = Text(stream=stream, text="a" * (self.max_text_bytes + 1))
            return [encode(text)], self.model.fail(ErrorCode.TEXT_TOO_LONG, stream), None
        if stream in self.model.active and code is not ErrorCode.UNKNOWN_TYPE:
            self.tally.events["error ends an active stream"] += 1
        return [pack(frame)], self.model.fail(code, stream), None


# -- the test -------------------------------------------------------------------------------------------


async def fuzz_connection(
    url: str, seed: int, tally: Tally, garbage: int, sequence: int, spoken: bool
) -> None:
    client = await RecordingClient.open(url)
    rng = random.Random(seed)
    try:
        refused = await fuzz_garbage(client, rng, garbage, tally)
        await SequenceFuzzer(client, rng, tally, spoken=spoken, refused=refused).run(sequence)
    finally:
        await client.close()


async def fuzz_concurrently(url: str, tally: Tally, garbage: int, sequence: int, *, spoken: bool) -> None:
    await asyncio.gather(
        *(
            fuzz_connection(url, SEED + 100 * spoken + i, tally, garbage, sequence, spoken)
            for i in range(CONNECTIONS)
        )
    )


async def expect_close(client: RecordingClient, code: int) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frame = await recv_frame(client)
            raise AssertionError(f"expected a close {code}, got {frame!r}")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def fuzz_frame_limit(url: str, tally: Tally) -> None:
    """Up to max_frame_bytes a frame is answered; one byte more closes the connection with 1009."""
    for oversize in (
        lambda limit: b"\xc1" * (limit + 1),
        lambda limit: [b"\xc1" * (limit // 2), b"\xc1" * (limit // 2 + 1)],  # fragments add up
        lambda limit: "x" * (limit + 1),  # a text message
    ):
        client = await RecordingClient.open(url)
        limit = client.hello.limits.max_frame_bytes
        await client.ws.send(b"\xc1" * limit)
        frame = await recv_frame(client)
        tally.saw(frame)
        assert isinstance(frame, Error) and frame.code == ErrorCode.BAD_FRAME
        await client.ws.send(oversize(limit))
        await expect_close(client, 1009)
        tally.frames_sent += 2


async def invalid_utf8_text_message_closes_with_1007(url: str) -> None:
    """A text message that is not UTF-8 breaks the WebSocket layer itself (RFC 6455 section 8.1), below
    voxwire's frames: the server closes with 1007 and carries on."""
    client = await RecordingClient.open(url)
    await client.ws.send(b"\xff\xfe", text=True)
    await expect_close(client, 1007)


def engine_idle(server: ServerProcess) -> bool:
    m = server.metrics()
    names = (
        "voxwire_streams_active",
        "voxwire_stream_tasks",
        "voxwire_engine_streams",
        "voxwire_connections",
    )
    return all(m[name] == 0 for name in names)


def error_counts(server: ServerProcess) -> Counter[str]:
    prefix = 'voxwire_errors_total{code="'
    return Counter({k[len(prefix) : -2]: int(v) for k, v in server.metrics().items() if k.startswith(prefix)})


async def speak_to_the_end(url: str, stream: str) -> None:
    client = await RecordingClient.open(url)
    await client.send(Start(stream=stream))
    await client.send(Text(stream=stream, text="The server is still fine after all that.", final=True))
    result = await client.until_done(stream)
    assert result.done is not None and result.done.reason == "complete" and result.chunks
    assert_contiguous(result)
    await client.close()


async def test_fuzzed_frames_are_each_answered_and_the_server_survives(live_server: ServerProcess) -> None:
    assert live_server.proc is not None
    pid = live_server.proc.pid
    wait_until(lambda: engine_idle(live_server), what="an idle server before fuzzing")
    errors_before = error_counts(live_server)
    tally = Tally()
    # First with real text among the frames (chunks interleave with the replies), which also warms up the
    # engine: its allocations grow in steps with new batch shapes, unrelated to bad frames, so RSS is
    # measured over the second part only, which sends no real text.
    await fuzz_concurrently(live_server.ws_url, tally, GARBAGE_WITH_SPEECH, SEQUENCE_WITH_SPEECH, spoken=True)
    await speak_to_the_end(live_server.ws_url, "warm-up")
    wait_until(lambda: engine_idle(live_server), what="counters to drop after the part with speech")
    rss_before = rss_mib(pid)
    frames_with_speech = tally.frames_sent
    await fuzz_concurrently(live_server.ws_url, tally, GARBAGE_FRAMES, SEQUENCE_FRAMES, spoken=False)
    await fuzz_frame_limit(live_server.ws_url, tally)
    await invalid_utf8_text_message_closes_with_1007(live_server.ws_url)
    frames_measured = tally.frames_sent - frames_with_speech

    assert frames_measured >= 20_000
    assert live_server.proc.poll() is None
    assert http_status(live_server.http_url + "/health") == 200
    wait_until(lambda: engine_idle(live_server), what="every counter back to zero")
    rss_after = rss_mib(pid)
    # Every error frame the clients got was counted by the server. (Exactly once: see
    # test_an_error_that_ends_a_stream_is_counted_once; errors that end a stream are counted twice today.)
    counted = error_counts(live_server) - errors_before
    assert set(counted) == set(tally.errors)
    assert all(counted[code] >= n for code, n in tally.errors.items()), (counted, tally.errors)
    # The run covered every misorder the spec names.
    for event in MISORDERS:
        assert tally.events[event] > 0, (event, tally.events)
    assert tally.longest_message < 500  # bounded, whatever the input's size
    print(
        f"\nfuzz: {tally.frames_sent} frames ({frames_with_speech} with speech, {frames_measured} without), "
        f"errors {dict(tally.errors)}, chunks {tally.chunks}, skipped valid {tally.skipped_valid}, "
        f"events {dict(tally.events)}, longest message {tally.longest_message}, "
        f"server RSS {rss_before:.1f} -> {rss_after:.1f} MiB over the {frames_measured} frames without speech"
    )
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MIB
    await speak_to_the_end(live_server.ws_url, "after-fuzz")
    wait_until(lambda: engine_idle(live_server), what="counters to drop after the last stream")


async def test_an_error_that_ends_a_stream_is_counted_once(live_server: ServerProcess) -> None:
    client = await RecordingClient.open(live_server.ws_url)
    before = error_counts(live_server)
    await client.send(Start(stream="twice"))
    await client.send(Start(stream="twice"))  # stream_exists: an error frame, then done reason error
    result = await client.until_done("twice")
    assert [e.code for e in result.errors] == [ErrorCode.STREAM_EXISTS]
    await client.close()
    assert error_counts(live_server) - before == Counter({"stream_exists": 1})
