"""protocol.codec and protocol.frames: bytes in, frames out, and nothing but ProtocolError for bad input.

Each ``type: ignore[arg-type]`` below passes a deliberately wrong type, to test the runtime check.
"""

import dataclasses
import math
import pickle
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.protocol import (
    MAX_CONTAINER_ITEMS,
    Cancel,
    Chunk,
    ClientFrame,
    Done,
    DoneReason,
    Draining,
    Error,
    ErrorCode,
    Hello,
    Limits,
    ProtocolError,
    ServerFrame,
    Start,
    Text,
    VoiceInfo,
    decode_client,
    decode_server,
    encode,
)

LIMITS = Limits(
    max_streams=4, max_text_bytes=4096, max_frame_bytes=65536, max_connections=64, max_buffered_audio_ms=2000
)
HELLO = Hello(
    server="voxwire/0.1",
    voices=(VoiceInfo("joe", "en_US", 22050), VoiceInfo("amy", "en_GB", 16000)),
    sample_rates=(16000, 22050, 24000),
    limits=LIMITS,
)
HELLO_WIRE: dict[str, Any] = msgpack.unpackb(encode(HELLO))
CLIENT_FRAMES: list[ClientFrame] = [
    Start("a1"),
    Start("a1", voice="joe", sample_rate=16000, speed=1.25, words=True),
    Start("x" * 64, speed=2),
    Text("a1", "Hello there, "),
    Text("a1", "how are you today? ünïcødé 🙂", final=True, flush=True),
    Text("a1", ""),
    Cancel("a1"),
]
SERVER_FRAMES: list[ServerFrame] = [
    HELLO,
    Hello("voxwire", voices=(), sample_rates=(), limits=LIMITS, protocol=1),
    Chunk("a1", seq=0, offset=0, sample_rate=22050, audio=b"\x01\x00" * 100),
    Chunk(
        "a1",
        seq=3,
        offset=8192,
        sample_rate=22050,
        audio=b"",
        words=(("hello", 8192, 9000), ("there", 9000, 9000)),
    ),
    Done("a1", DoneReason.COMPLETE, chunks=2, samples=30100, ttfa_ms=123.5),
    Done("a1", "cancelled", chunks=0, samples=0),
    Error(ErrorCode.UNKNOWN_VOICE, "voice 'bob' is not offered; pick one of joe, amy", stream="a1"),
    Error(ErrorCode.OVERLOADED, "the server is at capacity; retry later"),
]


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def client_error(value: Any) -> ProtocolError:
    data = value if isinstance(value, bytes | str) else pack(value)
    with pytest.raises(ProtocolError) as caught:
        decode_client(data)
    return caught.value


def server_error(value: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_server(pack(value))
    return caught.value


# Round trips and the wire format


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=repr)
def test_client_frames_round_trip(frame: ClientFrame) -> None:
    assert decode_client(encode(frame)) == frame


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda frame: type(frame).__name__)
def test_server_frames_round_trip(frame: ServerFrame) -> None:
    assert decode_server(encode(frame)) == frame


def test_encode_writes_the_spec_field_names_and_leaves_out_none() -> None:
    assert msgpack.unpackb(encode(Start("a1", voice="joe"))) == {
        "type": "start",
        "stream": "a1",
        "voice": "joe",
        "words": False,
    }
    assert msgpack.unpackb(encode(Done("a1", "complete", 2, 30100))) == {
        "type": "done",
        "stream": "a1",
        "reason": "complete",
        "chunks": 2,
        "samples": 30100,
    }
    assert msgpack.unpackb(encode(Error(ErrorCode.BAD_FRAME, "no"))) == {
        "type": "error",
        "code": "bad_frame",
        "message": "no",
    }


def test_encode_writes_hello_as_nested_maps_and_chunk_audio_as_bin() -> None:
    hello = HELLO_WIRE
    assert hello["protocol"] == 1
    assert hello["voices"][0] == {"id": "joe", "language": "en_US", "sample_rate": 22050}
    assert hello["sample_rates"] == [16000, 22050, 24000]
    assert hello["limits"]["max_streams"] == 4
    assert hello["limits"]["max_frame_bytes"] == 65536
    chunk = msgpack.unpackb(encode(SERVER_FRAMES[3]), raw=True)
    assert isinstance(chunk[b"audio"], bytes)
    assert chunk[b"words"] == [[b"hello", 8192, 9000], [b"there", 9000, 9000]]


def test_encode_refuses_what_is_not_a_frame() -> None:
    with pytest.raises(TypeError, match="dict"):
        encode({"type": "start", "stream": "a1"})  # type: ignore[arg-type]


def test_decode_takes_every_bytes_like_type() -> None:
    data = encode(Cancel("a1"))
    assert decode_client(bytearray(data)) == Cancel("a1")
    assert decode_client(memoryview(data)) == Cancel("a1")


def test_unknown_keys_are_ignored_whatever_they_hold() -> None:
    frame = decode_client(
        pack({"type": "text", "stream": "a1", "text": "hi", "lang": "en", "extra": {b"bin": [1, None, 2.5]}})
    )
    assert frame == Text("a1", "hi")
    assert decode_server(pack({**HELLO_WIRE, "motd": "welcome"})) == HELLO


def test_nil_counts_as_an_absent_key() -> None:
    frame = decode_client(
        pack({"type": "start", "stream": "a1", "voice": None, "speed": None, "words": None})
    )
    assert frame == Start("a1")


def test_chunk_words_decode_as_tuples_and_chunk_counts_samples() -> None:
    chunk = decode_server(encode(SERVER_FRAMES[3]))
    assert isinstance(chunk, Chunk)
    assert chunk.words == (("hello", 8192, 9000), ("there", 9000, 9000))
    counted = SERVER_FRAMES[2]
    assert isinstance(counted, Chunk) and counted.samples == 100


def test_done_reason_and_error_code_become_enum_members() -> None:
    done = decode_server(pack({"type": "done", "stream": "a1", "reason": "error", "chunks": 1, "samples": 5}))
    assert isinstance(done, Done)
    assert done.reason is DoneReason.ERROR
    error = decode_server(pack({"type": "error", "code": "internal", "message": "boom"}))
    assert isinstance(error, Error)
    assert error.code is ErrorCode.INTERNAL


# bad_frame and unknown_type


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ('{"type": "start"}', "binary"),
        (b"", "empty"),
        (b"\xc1", "msgpack"),
        (b"\x82\xa4type", "msgpack"),  # truncated
        (pack({"type": "cancel", "stream": "a1"}) + b"\x00", "after"),
        (pack([1, 2]), "map"),
        (pack("start"), "map"),
        (pack({"stream": "a1"}), "'type'"),
        (pack({"type": 5}), "'type'"),
        (pack({"type": "cancel", "stream": "a1", 7: 1}), "key"),
        (pack({"type": "cancel", "stream": "a1", b"bin": 1}), "key"),
        (b"\x81\x91\x01\x01", "msgpack"),  # a map whose key is a list
        (b"\x81\xa4type\xa2\xff\xfe", "UTF-8"),
        (b"\x91" * 5000 + b"\xc0", "deeply"),
        (b"\xdd\xff\xff\xff\xff", "msgpack"),  # an array claiming 4 billion items
    ],
)
def test_bad_frames(data: bytes | str, words: str) -> None:
    error = client_error(data)
    assert error.code is ErrorCode.BAD_FRAME
    assert words in error.message


def test_bad_frame_for_what_is_not_bytes() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client(5)  # type: ignore[arg-type]
    assert caught.value.code is ErrorCode.BAD_FRAME
    assert "int" in caught.value.message


def test_containers_are_capped() -> None:
    assert decode_client(pack({"type": "cancel", "stream": "a1", "x": [0] * MAX_CONTAINER_ITEMS})) == Cancel(
        "a1"
    )
    error = client_error({"type": "cancel", "stream": "a1", "x": [0] * (MAX_CONTAINER_ITEMS + 1)})
    assert error.code is ErrorCode.BAD_FRAME


def test_bad_frame_carries_the_stream_when_it_could_be_read() -> None:
    assert client_error({"stream": "a1"}).stream == "a1"
    assert client_error({"stream": 5}).stream is None


@pytest.mark.parametrize("frame_type", ["speak", "hello", "chunk", "START", ""])
def test_unknown_client_type(frame_type: str) -> None:
    error = client_error({"type": frame_type, "stream": "a1"})
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert repr(frame_type) in error.message
    assert "start, text, cancel" in error.message
    assert error.stream == "a1"


@pytest.mark.parametrize("frame_type", ["start", "text", "cancel", "bye"])
def test_unknown_server_type(frame_type: str) -> None:
    error = server_error({"type": frame_type, "stream": "a1"})
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert "hello, chunk, done, error" in error.message


# invalid_field


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"type": "start"}, "stream"),
        ({"type": "start", "stream": ""}, "stream"),
        ({"type": "start", "stream": "x" * 65}, "stream"),
        ({"type": "start", "stream": 5}, "stream"),
        ({"type": "start", "stream": "a1", "voice": ""}, "voice"),
        ({"type": "start", "stream": "a1", "voice": 3}, "voice"),
        ({"type": "start", "stream": "a1", "sample_rate": 7999}, "sample_rate"),
        ({"type": "start", "stream": "a1", "sample_rate": 48001}, "sample_rate"),
        ({"type": "start", "stream": "a1", "sample_rate": 16000.0}, "sample_rate"),
        ({"type": "start", "stream": "a1", "sample_rate": True}, "sample_rate"),
        ({"type": "start", "stream": "a1", "speed": "fast"}, "speed"),
        ({"type": "start", "stream": "a1", "speed": 0.49}, "speed"),
        ({"type": "start", "stream": "a1", "speed": 2.01}, "speed"),
        ({"type": "start", "stream": "a1", "speed": math.inf}, "speed"),
        ({"type": "start", "stream": "a1", "speed": math.nan}, "speed"),
        ({"type": "start", "stream": "a1", "speed": True}, "speed"),
        ({"type": "start", "stream": "a1", "words": 1}, "words"),
        ({"type": "text", "stream": "a1"}, "text"),
        ({"type": "text", "stream": "a1", "text": b"bytes"}, "text"),
        ({"type": "text", "stream": "a1", "text": "hi", "final": "yes"}, "final"),
        ({"type": "text", "stream": "a1", "text": "hi", "flush": 0}, "flush"),
        ({"type": "text", "text": "hi"}, "stream"),
        ({"type": "cancel", "stream": ["a1"]}, "stream"),
    ],
)
def test_invalid_client_fields(fields: dict[str, Any], name: str) -> None:
    error = client_error(fields)
    assert error.code is ErrorCode.INVALID_FIELD
    assert f"field {name!r}" in error.message
    stream = fields.get("stream")
    assert error.stream == (stream if name != "stream" else None)


def test_invalid_field_message_reads_as_a_sentence() -> None:
    error = client_error({"type": "start", "stream": "a1", "speed": "fast"})
    assert error.message == "field 'speed' must be a number from 0.5 to 2.0, got 'fast'"
    assert (
        str(error)
        == "invalid_field: field 'speed' must be a number from 0.5 to 2.0, got 'fast' (stream 'a1')"
    )


def test_huge_values_are_not_echoed_back() -> None:
    error = client_error({"type": "start", "stream": "a1", "speed": "x" * 100_000})
    assert error.code is ErrorCode.INVALID_FIELD
    assert len(error.message) < 200


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"server": ""}, "server"),
        ({"voices": {"id": "joe"}}, "voices"),
        ({"voices": [5]}, "voices[0]"),
        ({"voices": [{"id": "joe", "language": "en"}]}, "sample_rate"),
        ({"voices": [{"id": "joe", "language": "en", "sample_rate": 100}]}, "sample_rate"),
        ({"voices": [{"id": "joe", "language": "en", "sample_rate": 16000, b"k": 1}]}, "voices[0]"),
        ({"sample_rates": [16000, "22050"]}, "sample_rates[1]"),
        ({"limits": 4}, "limits"),
        ({"limits": {"max_streams": 4}}, "max_text_bytes"),
        ({"limits": {**HELLO_WIRE["limits"], "max_streams": 0}}, "max_streams"),
        ({"protocol": "1"}, "protocol"),
    ],
)
def test_invalid_hello_fields(change: dict[str, Any], name: str) -> None:
    error = server_error({**HELLO_WIRE, **change})
    assert error.code is ErrorCode.INVALID_FIELD
    assert name in error.message


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"seq": -1}, "seq"),
        ({"offset": 1.5}, "offset"),
        ({"sample_rate": 96000}, "sample_rate"),
        ({"audio": b"\x00"}, "audio"),
        ({"audio": "pcm"}, "audio"),
        ({"words": "hello"}, "words"),
        ({"words": [["hello", 5]]}, "words[0]"),
        ({"words": [["hello", 9, 5]]}, "words[0][2]"),
        ({"words": [[1, 0, 5]]}, "words[0][0]"),
    ],
)
def test_invalid_chunk_fields(change: dict[str, Any], name: str) -> None:
    chunk = {"type": "chunk", "stream": "a1", "seq": 0, "offset": 0, "sample_rate": 22050, "audio": b"\0\0"}
    error = server_error({**chunk, **change})
    assert error.code is ErrorCode.INVALID_FIELD
    assert f"field {name!r}" in error.message
    assert error.stream == "a1"


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"reason": "finished"}, "reason"),
        ({"chunks": -1}, "chunks"),
        ({"samples": None}, "samples"),
        ({"ttfa_ms": -1.0}, "ttfa_ms"),
        ({"ttfa_ms": "fast"}, "ttfa_ms"),
    ],
)
def test_invalid_done_fields(change: dict[str, Any], name: str) -> None:
    done = {"type": "done", "stream": "a1", "reason": "complete", "chunks": 0, "samples": 0}
    error = server_error({**done, **change})
    assert error.code is ErrorCode.INVALID_FIELD
    assert f"field {name!r}" in error.message


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"code": "teapot", "message": "x"}, "code"),
        ({"code": "internal"}, "message"),
        ({"code": "internal", "message": "x", "stream": ""}, "stream"),
    ],
)
def test_invalid_error_fields(fields: dict[str, Any], name: str) -> None:
    error = server_error({"type": "error", **fields})
    assert error.code is ErrorCode.INVALID_FIELD
    assert f"field {name!r}" in error.message


def test_frames_validate_when_built_in_python() -> None:
    with pytest.raises(ProtocolError, match="'stream'"):
        Cancel("")
    with pytest.raises(ProtocolError, match="'sample_rate'"):
        Start("a1", sample_rate=1)
    with pytest.raises(ProtocolError, match="'voices\\[0\\]'"):
        Hello("voxwire", voices=({"id": "joe"},), sample_rates=(), limits=LIMITS)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="'max_buffered_audio_ms'"):
        Limits(1, 1, 1, 1, max_buffered_audio_ms=0)
    with pytest.raises(ProtocolError, match="'audio'"):
        Chunk("a1", 0, 0, 16000, audio=bytearray(2))  # type: ignore[arg-type]
    assert Hello("v", voices=[], sample_rates=[8000], limits=LIMITS).sample_rates == (8000,)  # type: ignore[arg-type]


def test_protocol_error_keeps_its_fields_through_pickling() -> None:
    error = pickle.loads(pickle.dumps(ProtocolError("stream_closed", "no more text", "a1")))
    assert (error.code, error.message, error.stream) == (ErrorCode.STREAM_CLOSED, "no more text", "a1")


# Properties

stream_ids = st.text(min_size=1, max_size=64)
sample_rates = st.integers(8000, 48000)
words = st.lists(
    st.tuples(st.text(max_size=12), st.integers(0, 10**6), st.integers(0, 10**4)).map(
        lambda word: (word[0], word[1], word[1] + word[2])
    ),
    max_size=5,
).map(tuple)
limits = st.builds(Limits, *[st.integers(1, 2**40)] * 5)
client_frames = st.one_of(
    st.builds(
        Start,
        stream=stream_ids,
        voice=st.none() | st.text(min_size=1, max_size=20),
        sample_rate=st.none() | sample_rates,
        speed=st.none() | st.floats(0.5, 2.0) | st.integers(1, 2),
        words=st.booleans(),
    ),
    st.builds(Text, stream=stream_ids, text=st.text(max_size=200), final=st.booleans(), flush=st.booleans()),
    st.builds(Cancel, stream=stream_ids),
)
server_frames = st.one_of(
    st.builds(
        Hello,
        server=st.text(min_size=1, max_size=20),
        voices=st.lists(
            st.builds(VoiceInfo, st.text(min_size=1), st.text(min_size=1), sample_rates), max_size=3
        ),
        sample_rates=st.lists(sample_rates, max_size=4),
        limits=limits,
        protocol=st.integers(1, 3),
    ),
    st.builds(
        Chunk,
        stream=stream_ids,
        seq=st.integers(0, 2**32),
        offset=st.integers(0, 2**40),
        sample_rate=sample_rates,
        audio=st.binary(max_size=64).map(lambda audio: audio[: len(audio) // 2 * 2]),
        words=st.none() | words,
    ),
    st.builds(
        Done,
        stream=stream_ids,
        reason=st.sampled_from(DoneReason),
        chunks=st.integers(0, 2**32),
        samples=st.integers(0, 2**40),
        ttfa_ms=st.none() | st.floats(0.0, 1e6),
    ),
    st.builds(
        Error, code=st.sampled_from(ErrorCode), message=st.text(max_size=80), stream=st.none() | stream_ids
    ),
)

msgpack_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=70)
    | st.binary(max_size=16)
)
msgpack_values = st.recursive(
    msgpack_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
FIELD_NAMES = sorted(
    {"stream", "voice", "sample_rate", "speed", "words", "text", "final", "flush", "server", "voices"}
    | {"sample_rates", "limits", "protocol", "seq", "offset", "audio", "reason", "chunks", "samples"}
    | {"ttfa_ms", "code", "message", "id", "language", "max_streams"}
)
frame_types = st.sampled_from(
    ["start", "text", "cancel", "hello", "chunk", "done", "error", "nope", "", None, 1, b"start"]
)
# Values that pass some field's checks, so that random maps often get past the first fields to the later ones.
plausible_values = st.sampled_from(
    [
        *(
            "a1",
            "joe",
            "en",
            "complete",
            "internal",
            0,
            1,
            16000,
            1.0,
            True,
            False,
            b"\0\0",
            [],
            [["hi", 0, 1]],
        ),
        *([16000], HELLO_WIRE["voices"], HELLO_WIRE["limits"]),
    ]
)
field_values = plausible_values | msgpack_leaves | st.lists(msgpack_leaves, max_size=3)
frame_like_maps = st.builds(
    lambda frame_type, known, unknown: {**unknown, **known, "type": frame_type},
    frame_types,
    st.dictionaries(st.sampled_from(FIELD_NAMES), field_values, max_size=7),
    st.dictionaries(st.just("x"), msgpack_values, max_size=1),
)
odd_key_maps = st.dictionaries(
    st.text(max_size=8) | st.binary(max_size=4) | st.integers(-9, 9), msgpack_values, max_size=5
)


def decodes_or_refuses(data: bytes) -> None:
    """Each decoder returns a frame that survives another round trip, or raises ProtocolError."""
    for decode in (decode_client, decode_server):
        try:
            frame = decode(data)
        except ProtocolError as error:
            assert isinstance(error.code, ErrorCode)
            assert error.message
        else:
            assert decode(encode(frame)) == frame


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_nothing_but_protocol_error(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(CLIENT_FRAMES + SERVER_FRAMES), st.data())
def test_damaged_frames_raise_nothing_but_protocol_error(
    frame: ClientFrame | ServerFrame, data: st.DataObject
) -> None:
    encoded = bytearray(encode(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    decodes_or_refuses(bytes(encoded[: data.draw(st.integers(0, len(encoded)))]))


@settings(max_examples=200, deadline=None)
@given(frame_like_maps)
def test_random_frame_like_maps_raise_nothing_but_protocol_error(value: dict[str, Any]) -> None:
    decodes_or_refuses(pack(value))


@settings(max_examples=100, deadline=None)
@given(odd_key_maps | msgpack_values)
def test_random_msgpack_raises_nothing_but_protocol_error(value: Any) -> None:
    decodes_or_refuses(pack(value))


@settings(max_examples=150, deadline=None)
@given(client_frames)
def test_valid_client_frames_round_trip(frame: ClientFrame) -> None:
    assert decode_client(encode(frame)) == frame


@settings(max_examples=150, deadline=None)
@given(server_frames)
def test_valid_server_frames_round_trip(frame: ServerFrame) -> None:
    assert decode_server(encode(frame)) == frame


CLIENT_KEYS = {"type"} | {
    field.name for frame in typing.get_args(ClientFrame) for field in dataclasses.fields(frame)
}
"""Every key a client frame may carry, read from the frames themselves (a list kept by hand went stale)."""


@settings(max_examples=50, deadline=None)
@given(
    client_frames,
    st.dictionaries(st.text(max_size=8).filter(lambda key: key not in CLIENT_KEYS), msgpack_values),
)
def test_unknown_keys_never_change_a_frame(frame: ClientFrame, extra: dict[str, Any]) -> None:
    assert decode_client(pack({**extra, **msgpack.unpackb(encode(frame))})) == frame


def test_a_lone_surrogate_is_invalid_field_never_an_exception_further_on() -> None:
    with pytest.raises(ProtocolError) as caught:
        Text("a1", "half a pair: \ud83d")
    assert caught.value.code is ErrorCode.INVALID_FIELD and "'text'" in caught.value.message
    with pytest.raises(ProtocolError) as caught:
        Start("\udc00")
    assert caught.value.code is ErrorCode.INVALID_FIELD
    assert Text("a1", "whole: \U0001f600 and control \x00 characters pass").text.endswith("pass")


def test_a_hello_with_only_the_limits_the_spec_requires_decodes() -> None:
    hello = {
        "type": "hello",
        "protocol": 1,
        "server": "another/1.0",
        "voices": [{"id": "v", "language": "en", "sample_rate": 16000}],
        "sample_rates": [16000],
        "limits": {"max_streams": 2, "max_text_bytes": 1000, "max_frame_bytes": 4096},
    }
    frame = decode_server(msgpack.packb(hello))
    assert isinstance(frame, Hello)
    assert frame.limits.max_connections is None and frame.limits.idle_timeout_ms is None
    with pytest.raises(ProtocolError, match="max_streams"):
        decode_server(msgpack.packb({**hello, "limits": {"max_text_bytes": 1000, "max_frame_bytes": 4096}}))


# The drain notice and hello.notices


def test_draining_round_trips_with_and_without_its_grace() -> None:
    for frame in (Draining(grace_ms=10000), Draining()):
        assert decode_server(encode(frame)) == frame
    assert msgpack.unpackb(encode(Draining(grace_ms=5))) == {"type": "draining", "grace_ms": 5}


def test_draining_with_a_bad_grace_is_invalid_field() -> None:
    error = server_error({"type": "draining", "grace_ms": -1})
    assert error.code == ErrorCode.INVALID_FIELD and "grace_ms" in error.message


def test_hello_notices_round_trip_and_are_optional() -> None:
    hello = Hello("voxwire", voices=(), sample_rates=(), limits=LIMITS, notices=("draining",))
    assert decode_server(encode(hello)) == hello
    assert decode_server(pack({k: v for k, v in HELLO_WIRE.items() if k != "notices"})).notices == ()
    assert server_error({**HELLO_WIRE, "notices": [""]}).code == ErrorCode.INVALID_FIELD
