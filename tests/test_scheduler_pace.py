"""The scheduler's per-stream options, on a fake clock with hand-made outputs (no model): ``asap`` streams,
pauses, and the size of the first window."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.test_scheduler import HOP, RATE, latent, opened, sentences, spec, windows
from voxwire.engine.scheduler import (
    ASAP_WINDOW_FRAMES,
    FIRST_WINDOW_FRAMES,
    LARGE_WINDOW_FRAMES,
    STEADY_WINDOW_FRAMES,
    Scheduler,
    SchedulerConfig,
)
from voxwire.engine.work import Audio, End, Piece, Segment, SentenceBatch, SentenceOutput, WindowBatch


def opened_asap(sched: Scheduler, key: int, now: float = 0.0, text: str | None = "Hello.") -> None:
    sched.add_stream(key, replace(spec(), asap=True), now)
    if text is not None:
        sched.add_text(key, text)


def test_realtime_work_goes_before_asap_work_whatever_its_urgency() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    opened_asap(sched, 1, now=0.0)  # the older stream
    opened(sched, 2, now=5.0)
    assert [item.stream for item in sentences(sched, 5.0, {2: [40]}).items] == [2]
    assert [w[0] for w in windows(sched, 5.0)] == [2]  # the realtime stream's windows first ...
    assert [w[0] for w in windows(sched, 5.0)] == [2]
    batch = sched.schedule(5.0)  # ... then the asap stream's sentence
    assert isinstance(batch, SentenceBatch) and [item.stream for item in batch.items] == [1]


def test_asap_work_runs_while_realtime_streams_wait_on_their_look_ahead() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=1.0, max_batch_windows=1))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    while sched._peek_window(sched._realtime, 0.0) is not None:
        windows(sched, 0.0)
    assert sched.schedule(0.0) is None  # the realtime stream is 1 s ahead: it waits
    opened_asap(sched, 2)
    sentences(sched, 0.0, {2: [2000]})
    made = [windows(sched, 0.0)[0] for _ in range(6)]  # the asap stream is not held by look-ahead
    assert [stream for stream, _, _ in made] == [2] * 6
    assert sum(frames for _, _, frames in made) * HOP / RATE > 1.0  # more than max_ahead_s ahead
    assert [frames for _, _, frames in made[1:]] == [ASAP_WINDOW_FRAMES] * 5  # after its first window
    assert windows(sched, 0.8)[0][0] == 1  # as soon as the realtime stream is due, it goes first


def test_an_asap_stream_is_never_taken_for_running_dry() -> None:
    """Its client takes audio as fast as it is made: a new asap stream's first audio goes first, and its
    windows stay as large as they can be, however far its audio is behind the clock."""
    sched = Scheduler(SchedulerConfig(max_batch_windows=1))
    opened_asap(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    assert windows(sched, 0.0) == [(1, 0, FIRST_WINDOW_FRAMES)]  # 0.16 s, behind the clock from t = 0.16
    opened_asap(sched, 2, now=1.0)
    assert [item.stream for item in sentences(sched, 1.0, {2: [1000]}).items] == [2]
    assert windows(sched, 1.0) == [(2, 0, FIRST_WINDOW_FRAMES)]
    batch = sched.schedule(1.0)
    assert isinstance(batch, WindowBatch)
    assert [(item.spec.frames, item.spec.urgent) for item in batch.items] == [(ASAP_WINDOW_FRAMES, False)]


def test_asap_streams_are_not_admitted_by_capacity_but_up_to_their_own_limit() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=1.0, max_asap_streams=2))
    sched.record_step(busy_s=1.0, audio_s=1.0)  # room for one realtime stream
    opened(sched, 1)
    assert not sched.admits(0.0)
    assert sched.admits_asap()
    opened_asap(sched, 2)
    opened_asap(sched, 3)
    assert not sched.admits_asap()
    with pytest.raises(ValueError, match="asap"):
        opened_asap(sched, 4)
    assert sched.stats().asap_streams == 2
    sched.cancel(1)
    assert sched.admits(0.0)  # the asap streams do not count against realtime capacity
    sched.cancel(2)
    assert sched.admits_asap() and sched.stats().asap_streams == 1


def test_asap_streams_share_spare_capacity_by_audio_made() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1))
    for key in (1, 2):
        opened_asap(sched, key)
    assert len(sentences(sched, 0.0, {1: [2000], 2: [2000]}).items) == 2
    made: dict[int, int] = {1: 0, 2: 0}
    for _ in range(12):  # of the 18 windows the two latents make
        for stream, _, frames in windows(sched, 0.0):
            made[stream] += frames
    assert abs(made[1] - made[2]) <= ASAP_WINDOW_FRAMES


def test_a_pause_is_exact_silence_in_its_place_between_sentences() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    opened(sched, 1, text="One.")
    pause = LARGE_WINDOW_FRAMES * HOP + 7  # more than one window of silence, and not whole frames
    sched.add_pause(1, pause)
    sched.add_text(1, "Two.")
    sched.end_input(1)
    sentences(sched, 0.0, {1: [40]})
    blocks: list[tuple[bool, int]] = []  # (from a latent, samples) per window, in order
    events = []
    while (batch := sched.schedule(0.0)) is not None:
        if isinstance(batch, SentenceBatch):
            # after the pause was handed out
            assert [item.source for item in batch.items] == [Segment("Two.", 0)]
            sched.update(batch, [SentenceOutput(latent(40))], 0.0)
            continue
        assert isinstance(batch, WindowBatch)
        blocks += [(item.latent is not None, item.samples) for item in batch.items]
        events += sched.update(batch, [np.zeros(item.samples, np.int16) for item in batch.items], 0.0)
    silence = [samples for from_latent, samples in blocks if not from_latent]
    assert sum(silence) == pause and len(silence) == 2
    kinds = [from_latent for from_latent, _ in blocks]
    at = kinds.index(False)  # "One." windows, then the silence, then "Two." windows
    assert at > 0 and all(kinds[:at]) and kinds[at : at + 2] == [False, False]
    assert len(kinds) > at + 2 and all(kinds[at + 2 :])
    assert isinstance(events[-1], End) and all(isinstance(e, Audio) for e in events[:-1])


def test_a_stream_may_start_with_a_pause_and_it_is_its_first_audio() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    opened(sched, 1, text=None)
    sched.add_pause(1, 5 * HOP)
    batch = sched.schedule(0.0)
    assert isinstance(batch, WindowBatch) and batch.items[0].latent is None
    assert batch.items[0].samples == 5 * HOP


def test_a_pause_behind_a_sentence_in_flight_waits_for_it() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    opened(sched, 1, text="One.")
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch)
    sched.add_pause(1, HOP)  # arrives while "One." is in the sentence stage
    assert sched.schedule(0.0) is None
    sched.update(batch, [SentenceOutput(latent(40), rest=[Piece((1, 2, 3))])], 0.0)
    order: list[object] = []  # what ran, in order: a sentence's source, or "audio"/"silence" per window
    while (step := sched.schedule(0.0)) is not None:
        if isinstance(step, SentenceBatch):
            order += [item.source for item in step.items]
            sched.update(step, [SentenceOutput(latent(40))], 0.0)
        else:
            order += ["audio" if item.latent is not None else "silence" for item in step.items]
            sched.update(step, [np.zeros(item.samples, np.int16) for item in step.items], 0.0)
    # "One.", then the rest of its sentence (a piece left by the sentence stage), and only then the pause
    assert order == ["audio", "audio", Piece((1, 2, 3)), "audio", "silence"]


def test_a_pause_needs_samples_and_an_open_input() -> None:
    sched = Scheduler()
    opened(sched, 1, text=None)
    with pytest.raises(ValueError, match="at least one sample"):
        sched.add_pause(1, 0)
    sched.end_input(1)
    sched.add_pause(2, 10)  # an unknown (ended) stream: ignored


def test_the_first_window_has_the_size_the_stream_asked_for() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    sched.add_stream(1, replace(spec(), first_window_frames=32), 0.0)
    sched.add_text(1, "Hello.")
    sentences(sched, 0.0, {1: [200]})
    assert [windows(sched, 0.0)[0][2] for _ in range(2)] == [32, STEADY_WINDOW_FRAMES]  # 32 then 64
    assert FIRST_WINDOW_FRAMES != 32


def test_a_caller_may_keep_off_asap_work() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1))
    opened_asap(sched, 1)
    opened(sched, 2, text=None)  # a realtime stream with nothing to do
    assert sched.realtime_streams == 1
    assert sched.schedule(0.0, asap=False) is None
    assert sched.next_wakeup(0.0, asap=False) is None  # nothing for it: wait for new work
    assert isinstance(sched.schedule(0.0), SentenceBatch)  # the asap stream's, for a caller that takes it
