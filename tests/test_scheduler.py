"""The engine scheduler, driven on the CPU with a fake clock and hand-made outputs (no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxwire.engine.budget import AudioBudget
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.scheduler import (
    FIRST_WINDOW_FRAMES,
    LARGE_WINDOW_FRAMES,
    STEADY_WINDOW_FRAMES,
    Scheduler,
    SchedulerConfig,
    StreamSpec,
)
from voxwire.engine.work import Audio, End, Failed, Piece, Segment, SentenceBatch, SentenceOutput, WindowBatch

RATE = 1000  # samples per second
HOP = 10  # samples per frame: a steady window (64 frames) is 0.64 s of audio, a first window 0.16 s
PARAMS = SynthesisParams(0.0, 0.0, 1.0)


def spec(voice: str = "v", budget: AudioBudget | None = None) -> StreamSpec:
    return StreamSpec(voice, RATE, HOP, PARAMS, budget)


def latent(frames: int) -> Latent:
    zeros = torch.zeros(2, frames)
    return Latent(zeros, zeros, torch.zeros(0, dtype=torch.long), ready=frames)


def sentences(sched: Scheduler, now: float, frames: dict[int, list[int]] | None = None) -> SentenceBatch:
    """Run the next batch, which must be sentences; each item's text becomes a latent of ``frames[stream]``
    frames ([n], default [200]; [] for a text with nothing to say)."""
    batch = sched.schedule(now)
    assert isinstance(batch, SentenceBatch), batch
    sizes = [(frames or {}).get(item.stream, [200]) for item in batch.items]
    sched.update(batch, [SentenceOutput(latent(n[0]) if n else None) for n in sizes], now)
    return batch


def windows(sched: Scheduler, now: float) -> list[tuple[int, int, int]]:
    """Run the next batch, which must be windows; returns (stream, first frame, frames) per item."""
    batch = sched.schedule(now)
    assert isinstance(batch, WindowBatch), batch
    sched.update(batch, [np.zeros(item.samples, np.int16) for item in batch.items], now)
    return [(item.stream, item.spec.start, item.spec.frames) for item in batch.items]


def opened(
    sched: Scheduler,
    key: int,
    now: float = 0.0,
    text: str | None = "Hello.",
    voice: str = "v",
    budget: AudioBudget | None = None,
) -> None:
    sched.add_stream(key, spec(voice, budget), now)
    if text is not None:
        sched.add_text(key, text)


def test_nothing_to_do_gives_no_batch() -> None:
    sched = Scheduler()
    opened(sched, 1, text=None)
    assert sched.schedule(0.0) is None
    assert sched.next_wakeup(0.0) is None


def test_a_sentence_becomes_a_small_first_window_then_a_ramp_to_steady_ones() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1, large_window_ahead_s=100))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [200]})
    got = [windows(sched, 0.0)[0] for _ in range(5)]
    assert FIRST_WINDOW_FRAMES == 16
    assert got == [(1, 0, 16), (1, 16, 32), (1, 48, 64), (1, 112, 64), (1, 176, 24)]
    sched.add_text(1, "Again.")
    sentences(sched, 20.0, {1: [100]})  # at t=20 the listener has played everything: no audio left
    assert windows(sched, 20.0)[0] == (1, 0, STEADY_WINDOW_FRAMES)  # later sentences: steady windows


def test_a_listener_holding_enough_audio_gets_large_windows() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1, large_window_ahead_s=1.0))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    assert windows(sched, 0.0) == [(1, 0, FIRST_WINDOW_FRAMES)]  # 0.16 s held: the ramp next
    assert windows(sched, 0.0) == [(1, 16, 32)]  # 0.48 s held
    assert windows(sched, 0.0) == [(1, 48, STEADY_WINDOW_FRAMES)]  # 1.12 s held: large from now on
    assert windows(sched, 0.0) == [(1, 112, LARGE_WINDOW_FRAMES)]  # 2.4 s held
    assert windows(sched, 2.0) == [(1, 240, STEADY_WINDOW_FRAMES)]  # played down to 0.4 s: steady again


def test_windows_are_relaxed_exactly_while_the_listener_holds_enough_audio() -> None:
    """Relaxed (the voice may then run a longer step, the flow to the sentence's end) never before the first
    audio, and not once the listener is down to less than ``large_window_ahead_s``."""
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1, large_window_ahead_s=1.0))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    relaxed = []
    for now in (0.0, 0.0, 0.0, 0.0, 2.5):
        batch = sched.schedule(now)
        assert isinstance(batch, WindowBatch)
        relaxed.append(batch.items[0].spec.relaxed)
        sched.update(batch, [np.zeros(item.samples, np.int16) for item in batch.items], now)
    assert relaxed == [False, False, False, True, False]


def test_a_window_is_urgent_exactly_while_a_listener_waits_on_it() -> None:
    """Urgent (the voice then runs the flow just as far as the window reads): the stream's very first window,
    the ramp after it, and a window whose listener is running dry; not one whose listener holds audio."""
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    opened(sched, 1)

    def next_window_urgent(now: float) -> bool:
        batch = sched.schedule(now)
        assert isinstance(batch, WindowBatch)
        sched.update(batch, [np.zeros(item.samples, np.int16) for item in batch.items], now)
        return batch.items[0].spec.urgent

    sentences(sched, 0.0, {1: [FIRST_WINDOW_FRAMES + 32 + 2 * STEADY_WINDOW_FRAMES]})
    urgent = [next_window_urgent(0.0) for _ in range(3)]  # first, ramp, steady (0.48 s held)
    urgent.append(next_window_urgent(1.1))  # 0.02 s left to play: running dry
    sched.add_text(1, "Again.")
    sentences(sched, 20.0, {1: [100]})  # played out by now: the listener waits on this one too
    urgent.append(next_window_urgent(20.0))
    assert urgent == [True, True, False, True, True]


def test_a_caller_keeping_short_steps_gets_no_relaxed_window() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1, large_window_ahead_s=1.0))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    for _ in range(3):
        windows(sched, 0.0)  # 1.6 s held now: relaxed windows from here on, for callers that take them
    short = sched.schedule(0.0, relax=False)
    assert isinstance(short, WindowBatch)
    assert [(item.spec.frames, item.spec.relaxed) for item in short.items] == [(STEADY_WINDOW_FRAMES, False)]
    sched.update(short, [np.zeros(item.samples, np.int16) for item in short.items], 0.0)
    long = sched.schedule(0.0)
    assert isinstance(long, WindowBatch)
    assert [(item.spec.frames, item.spec.relaxed) for item in long.items] == [(LARGE_WINDOW_FRAMES, True)]


def test_a_streams_windows_are_never_in_flight_in_two_batches_at_once() -> None:
    """With several compute threads, a stream re-indexed while its window is in flight (new text, its next
    sentence done) must not hand out its next window to another thread: that one could finish first and
    its audio go out of order, and both would run the flow on the same latent."""
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1, max_batch_sentences=1))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [80]})  # short: its next sentence is due as soon as there is one
    in_flight = sched.schedule(0.0)
    assert isinstance(in_flight, WindowBatch)
    sched.add_text(1, "More text.")  # re-indexes the stream
    next_sentence = sched.schedule(0.0)
    assert isinstance(next_sentence, SentenceBatch)  # its next sentence may run beside the window
    sched.update(next_sentence, [SentenceOutput(latent(200))], 0.0)  # re-indexes it again
    assert sched.schedule(0.0) is None
    sched.update(in_flight, [np.zeros(item.samples, np.int16) for item in in_flight.items], 0.0)
    following = sched.schedule(0.0)
    assert isinstance(following, WindowBatch)
    assert following.items[0].spec.start == in_flight.items[0].spec.end


def test_the_stream_ends_after_its_last_window_and_not_before() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    opened(sched, 1)
    assert sched.end_input(1) == []  # a sentence is queued: no End yet
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch)
    assert sched.update(batch, [SentenceOutput(latent(40))], 0.0) == []
    second = sched.schedule(0.0)
    assert isinstance(second, WindowBatch) and len(second.items) == 1
    assert second.items[0].spec.frames == FIRST_WINDOW_FRAMES
    first_events = sched.update(second, [np.ones(FIRST_WINDOW_FRAMES * HOP, np.int16)], 0.0)
    assert [type(e) for e in first_events] == [Audio]
    third = sched.schedule(0.0)
    assert isinstance(third, WindowBatch)
    assert third.items[0].spec.frames == 40 - FIRST_WINDOW_FRAMES
    events = sched.update(third, [np.ones((40 - FIRST_WINDOW_FRAMES) * HOP, np.int16)], 0.0)
    assert [type(e) for e in events] == [Audio, End]
    assert 1 not in sched and len(sched) == 0


def test_end_input_of_an_idle_stream_ends_it_at_once() -> None:
    sched = Scheduler()
    opened(sched, 1, text=None)
    assert sched.end_input(1) == [End(1)]
    assert sched.end_input(1) == []  # gone: ignored


def test_a_text_with_nothing_to_say_ends_with_no_audio() -> None:
    sched = Scheduler()
    opened(sched, 1, text="...")
    sched.end_input(1)
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch)
    assert sched.update(batch, [SentenceOutput(None)], 0.0) == [End(1)]


def test_new_stream_sentence_goes_before_windows_of_running_streams() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=4))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    windows(sched, 0.0)  # stream 1 has produced audio now
    windows(sched, 0.0)  # 16 + 32 + 64 + 64 frames: 1.76 s of audio
    opened(sched, 2, now=1.0)
    batch = sched.schedule(1.0)
    assert isinstance(batch, SentenceBatch)
    assert [item.stream for item in batch.items] == [2]


def test_a_playing_stream_about_to_run_dry_goes_before_a_new_streams_sentence() -> None:
    """Within ``run_dry_steps`` mean steps of its listener running out, a playing stream's window goes
    first: a burst of new streams cannot starve the ones already playing."""
    sched = Scheduler(SchedulerConfig(max_batch_windows=1, run_dry_steps=2.0))
    sched.record_step(busy_s=0.05, audio_s=0.5)  # steps of 0.05 s: running dry within 0.1 s
    opened(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    windows(sched, 0.0)  # 0.16 s of audio from t = 0
    opened(sched, 2, now=0.0)
    assert isinstance(sched.schedule(0.05), SentenceBatch)  # 0.11 s left: the new stream first
    sched.cancel(2)
    opened(sched, 3, now=0.07)
    batch = sched.schedule(0.07)  # 0.09 s left: stream 1 first
    assert isinstance(batch, WindowBatch)
    assert [(item.stream, item.spec.urgent) for item in batch.items] == [(1, True)]


def test_in_one_batch_only_the_window_a_listener_waits_on_is_urgent() -> None:
    """A stream that gives several windows to one batch: once the first of them is counted, its listener
    is no longer running dry, so the later ones keep their chunks of flow."""
    sched = Scheduler(SchedulerConfig(max_batch_windows=8, max_ahead_s=1.5, large_window_ahead_s=100))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [2000]})
    windows(sched, 0.0)  # the first window
    assert [frames for _, _, frames in windows(sched, 0.0)] == [32, 64, 64]  # 1.76 s ahead
    batch = sched.schedule(3.0)  # played out by now
    assert isinstance(batch, WindowBatch)
    urgent = [item.spec.urgent for item in batch.items]
    assert len(urgent) > 1 and urgent[0] and not any(urgent[1:])


def test_a_listener_that_ran_dry_resumes_its_playback_clock() -> None:
    """Audio made after a listener ran dry (its text came late) starts playing when it arrives: the stream's
    deadline moves on by the gap, so it is not taken for running dry ever after."""
    sched = Scheduler(SchedulerConfig(max_batch_windows=1, max_ahead_s=100))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [FIRST_WINDOW_FRAMES]})
    windows(sched, 0.0)  # 0.16 s, played out at t = 0.16
    sched.add_text(1, "Later.")
    sentences(sched, 5.0, {1: [1000]})
    windows(sched, 5.0)  # plays from t = 5: 0.64 s of audio
    opened(sched, 2, now=5.1)
    assert isinstance(sched.schedule(5.1), SentenceBatch)  # stream 1 holds 0.54 s: the new stream first


def test_first_window_of_a_new_stream_beats_every_deadline() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1))
    opened(sched, 1)
    sentences(sched, 0.0)
    windows(sched, 0.0)
    opened(sched, 2, now=0.0)
    sentences(sched, 0.0)
    # Stream 1's deadline (0.16 s) is long past at t=5, yet the new stream's first window goes first.
    assert windows(sched, 5.0) == [(2, 0, FIRST_WINDOW_FRAMES)]


def test_windows_run_earliest_playback_deadline_first() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1, max_ahead_s=100))
    for key in (1, 2):
        opened(sched, key)
        sentences(sched, 0.0, {key: [1000]})
    assert windows(sched, 0.0)[0][0] == 1  # first windows: 1 then 2, both 0.32 s
    assert windows(sched, 0.0)[0][0] == 2
    assert windows(sched, 0.1)[0][0] == 1  # a tie on deadline goes to the older stream
    order = [windows(sched, 0.2)[0][0] for _ in range(4)]
    assert order == [2, 1, 2, 1]


def test_a_first_window_batch_takes_one_window_per_new_stream() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=8))
    for key in (1, 2):
        opened(sched, key)
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch)
    sched.update(batch, [SentenceOutput(latent(300)), SentenceOutput(latent(300))], 0.0)
    assert windows(sched, 0.0) == [(1, 0, FIRST_WINDOW_FRAMES), (2, 0, FIRST_WINDOW_FRAMES)]


def test_a_started_stream_gives_several_windows_to_one_batch_within_its_look_ahead() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=8, max_ahead_s=2.0))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [2000]})
    windows(sched, 0.0)  # 0.16 s of audio
    got = windows(sched, 0.0)
    # Windows go in while the stream stays under 2 s ahead: 0.16 + 0.32 + 0.64 * 2 = 1.76 s, one more.
    assert [frames for _, _, frames in got] == [32, 64, 64, 64]
    assert {stream for stream, _, _ in got} == {1}


def test_look_ahead_is_bounded() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=64, max_ahead_s=1.0))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [2000]})
    windows(sched, 0.0)
    windows(sched, 0.0)
    assert sched.stats().queued_windows > 0
    assert sched.schedule(0.0) is None  # ahead by more than a second of audio: it waits
    wake = sched.next_wakeup(0.0)
    assert wake is not None and 0 < wake <= 1.0
    assert sched.schedule(wake + 0.01) is not None  # playback caught up


def test_an_exhausted_budget_holds_the_connections_streams_until_it_has_room() -> None:
    budget = AudioBudget(limit_s=0.5)
    sched = Scheduler(SchedulerConfig(max_ahead_s=100, max_batch_windows=1))
    opened(sched, 1, budget=budget)
    sentences(sched, 0.0, {1: [1000]})
    windows(sched, 0.0)  # 0.16 s
    windows(sched, 0.0)  # 0.48 s
    windows(sched, 0.0)  # 1.12 s: over the limit
    assert budget.exhausted()
    assert sched.schedule(0.0) is None
    assert sched.stats().paused_streams == 1
    assert budget.waiting  # the engine waits on it ...
    assert budget.release(0.5) is False  # ... and 0.62 s left is still too much: no need to wake it
    assert budget.release(0.3) is True  # 0.32 s: room again, wake the engine
    assert sched.schedule(0.0) is not None
    assert sched.stats().paused_streams == 0 and not budget.waiting


def test_the_budget_counts_exactly_the_audio_made_for_live_streams() -> None:
    budget = AudioBudget(limit_s=100)
    sched = Scheduler(SchedulerConfig(max_batch_windows=2, max_batch_sentences=2, max_ahead_s=100))
    for key in (1, 2):
        opened(sched, key, budget=budget)
    sentences(sched, 0.0)
    batch = sched.schedule(0.0)
    assert isinstance(batch, WindowBatch) and len(batch.items) == 2
    sched.cancel(2)  # cancelled while its window is in flight
    first, second = batch.halves()  # the worker may hand results back in halves (failure isolation)
    for half in (first, second):
        sched.update(half, [np.zeros(item.samples, np.int16) for item in half.items], 0.0)
    assert budget.buffered_s == pytest.approx(FIRST_WINDOW_FRAMES * HOP / RATE)  # stream 1's first window


def test_cancel_removes_queued_work_and_in_flight_results_are_ignored() -> None:
    sched = Scheduler()
    opened(sched, 1)
    sched.add_text(1, "Two.")
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch)
    sched.cancel(1)
    assert sched.stats().queued_texts == 0 and len(sched) == 0
    assert (
        sched.update(batch, [SentenceOutput(latent(100))], 0.0) == []
    )  # the batch in flight finishes after the cancel
    assert sched.stats().queued_windows == 0
    assert sched.schedule(0.0) is None
    sched.add_text(1, "Ignored.")  # text racing the cancel is dropped
    assert sched.end_input(1) == []


def test_a_failed_item_fails_its_stream_only() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_sentences=4))
    for key in (1, 2):
        opened(sched, key)
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch) and len(batch.items) == 2
    bad, good = batch.halves()
    assert sched.fail(bad, bad.items[0], RuntimeError("boom")) == [
        Failed(1, "synthesis failed: RuntimeError")
    ]
    assert 1 not in sched
    assert sched.update(good, [SentenceOutput(latent(50))], 0.0) == []
    assert windows(sched, 0.0) == [(2, 0, FIRST_WINDOW_FRAMES)]
    with pytest.raises(ValueError, match="not in the batch"):
        sched.fail(good, bad.items[0], RuntimeError("boom"))


def test_next_sentence_is_encoded_before_the_current_one_runs_out() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1, max_ahead_s=100))
    opened(sched, 1)
    sched.add_text(1, "Second.")
    sentences(sched, 0.0, {1: [150]})  # windows of 16, 32, 64, 38 frames
    windows(sched, 0.0)
    windows(sched, 0.0)
    windows(sched, 0.0)  # one window left: the next sentence is due, after that window
    assert windows(sched, 0.0) == [(1, 112, 38)]
    assert isinstance(sched.schedule(0.0), SentenceBatch)


def test_a_playing_stream_gets_its_next_window_before_its_next_sentence() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1, max_ahead_s=100))
    opened(sched, 1)
    sched.add_text(1, "Second.")
    sentences(sched, 0.0, {1: [96]})  # two windows
    windows(sched, 0.0)  # first audio out; one window left, so the next sentence is due too
    assert isinstance(sched.schedule(0.1), WindowBatch)  # the audio needed first goes first


def test_fairness_no_stream_starves() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=2, max_ahead_s=1.0))
    for key in range(6):
        opened(sched, key)
    sentences(sched, 0.0, {key: [20_000] for key in range(6)})
    now = 0.0
    produced = dict.fromkeys(range(6), 0)
    for _ in range(300):
        batch = sched.schedule(now)
        if isinstance(batch, WindowBatch):
            for item in batch.items:
                produced[item.stream] += item.samples
            sched.update(batch, [np.zeros(item.samples, np.int16) for item in batch.items], now)
        now += 0.2  # the playback clock advances; the worker makes up to 1.28 s of audio per 0.2 s
    assert min(produced.values()) > 0
    assert max(produced.values()) - min(produced.values()) <= 2 * 64 * HOP  # within two windows


def test_admission_follows_measured_capacity() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=0.5))
    assert sched.capacity_streams() == float("inf")  # nothing measured yet: admit
    sched.record_step(busy_s=2.0, audio_s=8.0)  # 4x real time measured
    assert sched.capacity_streams() == pytest.approx(2.0)
    opened(sched, 1)
    assert sched.admits(0.0)
    opened(sched, 2, now=-5.0, text=None)
    assert sched.admits(0.0)  # an open stream that has had no text for seconds costs nothing
    sched.add_text(2, "Busy too.")
    assert not sched.admits(0.0)
    sched.cancel(2)
    assert sched.admits(0.0)


def test_a_seeded_estimate_admits_by_it_until_measured_work_replaces_it() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=0.5))
    sched.seed_capacity(4.0)  # a calibration: 4 s of audio per second of compute
    assert sched.capacity_streams() == pytest.approx(2.0)
    opened(sched, 1)
    opened(sched, 2)
    assert not sched.admits(0.0)  # a cold engine no longer admits everything
    sched.record_step(busy_s=10.0, audio_s=100.0)  # a whole window of measured work at 10x real time
    assert sched.capacity_streams() == pytest.approx(5.0)
    assert sched.admits(0.0)
    with pytest.raises(ValueError, match="audio per busy second"):
        sched.seed_capacity(0.0)


def test_a_stream_still_playing_counts_against_capacity_until_its_audio_has_played() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=1.0, max_ahead_s=100, max_batch_windows=1))
    sched.record_step(busy_s=1.0, audio_s=2.0)  # 2 streams in real time
    opened(sched, 2, now=10.0)
    sentences(sched, 10.0, {2: [96]})
    for _ in range(3):
        windows(sched, 10.0)  # all its windows (16, 32, 48 frames): 0.96 s of audio, playing from t = 10 s
    assert sched.stats().queued_windows == 0
    opened(sched, 1, now=10.0)
    grace = sched.config.admission_grace_s
    assert not sched.admits(10.5)  # no queued work, but its listener is still playing: it counts
    assert not sched.admits(10.96 + grace / 2)  # just played out: its next text is likely on its way
    assert sched.admits(10.96 + grace * 2)  # waiting for text long after: it costs nothing


def test_a_burst_of_new_streams_counts_before_their_text_arrives() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=1.0))
    sched.record_step(busy_s=1.0, audio_s=2.0)  # 2 streams in real time
    opened(sched, 1, now=5.0, text=None)
    assert sched.admits(5.0)
    opened(sched, 2, now=5.0, text=None)
    assert not sched.admits(5.0)  # two just opened, no text yet: full
    assert sched.admits(5.0 + sched.config.admission_grace_s * 2)  # both silent since: free again


def test_batches_hold_one_voice() -> None:
    sched = Scheduler()
    opened(sched, 1, voice="x")
    opened(sched, 2, voice="y")
    first = sentences(sched, 0.0)
    second = sentences(sched, 0.0)
    assert [first.voice, second.voice] == ["x", "y"]
    batch = sched.schedule(0.0)
    assert isinstance(batch, WindowBatch) and [item.stream for item in batch.items] == [1]


def test_duplicate_stream_key_is_refused() -> None:
    sched = Scheduler()
    opened(sched, 1)
    with pytest.raises(ValueError, match="already scheduled"):
        opened(sched, 1)


def test_text_after_end_input_is_a_caller_bug() -> None:
    sched = Scheduler()
    opened(sched, 1)
    sched.end_input(1)
    with pytest.raises(ValueError, match="after its input ended"):
        sched.add_text(1, "More.")


def test_sentences_batch_with_others_of_about_their_length() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_sentences=8, sentence_length_ratio=2.0))
    texts = {1: "x" * 40, 2: "x" * 300, 3: "x" * 25, 4: "x" * 80, 5: "x" * 81}
    for key, text in texts.items():
        opened(sched, key, now=key / 10, text=text)  # stream 1 is the most urgent
    silent: dict[int, list[int]] = {key: [] for key in texts}  # no audio: only sentences compete here
    assert [item.stream for item in sentences(sched, 1.0, silent).items] == [1, 3, 4]  # 20 to 80 chars
    assert [item.stream for item in sentences(sched, 1.0, silent).items] == [2]  # 300 leads; 81 < half
    assert [item.stream for item in sentences(sched, 1.0, silent).items] == [5]


def test_stale_index_entries_do_not_pile_up() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=1e9, max_batch_windows=1))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [64 * 10_000]})
    for step in range(2_000):
        windows(sched, float(step))
        sched.add_text(1, "More.")  # every change re-indexes the stream
    assert len(sched._realtime.windows) + len(sched._realtime.sentences) <= 64 + 8 * len(sched)


def test_a_stream_with_work_in_flight_waits_for_its_results_before_more_is_scheduled() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1, max_ahead_s=100))
    opened(sched, 1)
    sentences(sched, 0.0, {1: [1000]})
    first = sched.schedule(0.0)
    assert isinstance(first, WindowBatch)
    assert sched.schedule(0.0) is None  # its window is in flight: nothing else of it runs meanwhile
    sched.update(first, [np.zeros(first.items[0].samples, np.int16)], 0.0)
    assert isinstance(sched.schedule(0.0), WindowBatch)


def test_the_other_pieces_of_a_long_sentence_run_next_each_in_a_step_of_its_own() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_sentences=8, max_ahead_s=100))
    opened(sched, 1, text="A very long sentence.")
    sched.add_text(1, "After it.")
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch) and len(batch.items) == 1
    pieces = [Piece((1, 0, 5, 0, 2)), Piece((1, 0, 6, 0, 2))]
    sched.update(batch, [SentenceOutput(latent(FIRST_WINDOW_FRAMES), rest=pieces)], 0.0)
    assert sched.stats().queued_texts == 3
    windows(sched, 0.0)
    sources = []
    for _ in range(3):
        batch = sched.schedule(0.0)
        assert isinstance(batch, SentenceBatch) and len(batch.items) == 1  # one piece per step: bounded
        sources.append(batch.items[0].source)
        sched.update(batch, [SentenceOutput(None)], 0.0)
    assert sources == [*pieces, Segment("After it.")]


def test_a_new_streams_sentence_goes_before_the_pieces_left_of_a_long_one() -> None:
    sched = Scheduler(SchedulerConfig(max_ahead_s=100))
    opened(sched, 1, text="A flood of text.")
    batch = sched.schedule(0.0)
    assert isinstance(batch, SentenceBatch)
    flood = [Piece((1, 0, 7, 0, 2))] * 50
    sched.update(batch, [SentenceOutput(latent(FIRST_WINDOW_FRAMES), rest=flood)], 0.0)
    windows(sched, 0.0)  # the flooding stream has started
    opened(sched, 2, now=0.1, text="Hello.")
    first = sched.schedule(0.1)
    assert isinstance(first, SentenceBatch) and [item.stream for item in first.items] == [2]


def test_capacity_counts_every_compute_thread() -> None:
    one = Scheduler(SchedulerConfig(admission_headroom=0.5))
    two = Scheduler(SchedulerConfig(admission_headroom=0.5, workers=2))
    for sched in (one, two):
        sched.record_step(busy_s=2.0, audio_s=8.0)  # each thread makes 4 s of audio per second of work
    assert one.capacity_streams() == pytest.approx(2.0)
    assert two.capacity_streams() == pytest.approx(4.0)
