"""StreamSession with a recording engine handle (a test double): when a sentence still arriving is cut at a
clause boundary. The real pipeline runs in tests/test_server_e2e.py."""

from __future__ import annotations

import time

from voxwire.server.metrics import Metrics
from voxwire.server.outbox import Outbox
from voxwire.server.segmenter import SentenceSegmenter
from voxwire.server.stream import LOW_AUDIO_S, StreamSession

RATE = 22050


class RecordingEngineStream:
    sample_rate = RATE

    def __init__(self) -> None:
        self.segments: list[str] = []
        self.offsets: list[int] = []
        self.pauses: list[float] = []

    def add_text(self, segment: str, offset: int) -> None:
        self.segments.append(segment)
        self.offsets.append(offset)

    def add_pause(self, seconds: float) -> None:
        self.pauses.append(seconds)

    def end_input(self) -> None:
        pass


def session_with(engine: RecordingEngineStream) -> StreamSession:
    # RecordingEngineStream stands in for the engine's StreamHandle (duck-typed).
    return StreamSession("s1", engine, RATE, Outbox(8), SentenceSegmenter(), Metrics(), on_end=lambda _: None)  # type: ignore[arg-type]


def speak(session: StreamSession, audio_left_s: float) -> None:
    """As if the first chunk went out a second ago and the listener now has ``audio_left_s`` to play."""
    session.counters.first_audio_at = time.perf_counter() - 1.0
    session.counters.samples = int((1.0 + audio_left_s) * RATE)


LONG_SENTENCE = "If the train leaves at 7:40 and the trip takes 2 hours and 5 minutes, you'll"


def test_a_listener_running_out_of_audio_gets_the_next_clause_early() -> None:
    engine = RecordingEngineStream()
    session = session_with(engine)
    session.add_text("Let me think. ", final=False, flush=False)
    speak(session, audio_left_s=LOW_AUDIO_S / 2)
    session.add_text(LONG_SENTENCE, final=False, flush=False)
    assert engine.segments == [
        "Let me think.",
        "If the train leaves at 7:40 and the trip takes 2 hours and 5 minutes,",
    ]


def test_a_listener_with_audio_to_spare_gets_whole_sentences() -> None:
    engine = RecordingEngineStream()
    session = session_with(engine)
    session.add_text("Let me think. ", final=False, flush=False)
    speak(session, audio_left_s=LOW_AUDIO_S + 30)
    session.add_text(LONG_SENTENCE, final=False, flush=False)
    assert engine.segments == ["Let me think."]
    session.add_text(" arrive at 9:45.", final=True, flush=False)
    assert engine.segments == ["Let me think.", LONG_SENTENCE + " arrive at 9:45."]


def test_each_segment_goes_with_where_it_starts_in_the_text_as_sent() -> None:
    engine = RecordingEngineStream()
    session = session_with(engine)
    sent = ["  Hello there. <bre", 'ak time="1s"/> Dr. Who', " is here, she said.", " Bye"]
    for index, text in enumerate(sent):
        session.add_text(text, final=index == len(sent) - 1, flush=False)
    whole = "".join(sent)
    assert engine.pauses == [1.0]
    assert len(engine.segments) >= 3
    for segment, offset in zip(engine.segments, engine.offsets, strict=True):
        assert whole[offset : offset + len(segment)] == segment
    assert engine.offsets == sorted(engine.offsets)
    assert engine.offsets[1] > whole.index("/>")  # looked for after the break tag
