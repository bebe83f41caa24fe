"""The engine scheduler, driven on the CPU with a fake clock and hand-made results."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from voxwire.engine.scheduler import Scheduler, SchedulerConfig, StreamWork, WorkKind

RATE = 1000  # samples per second: one window of 500 samples is half a second of audio


@dataclass(frozen=True)
class Job:
    name: str
    samples: int = 500


def stream(key: int, created_at: float = 0.0, voice: str = "v", budget: object | None = None) -> StreamWork:
    return StreamWork(key=key, voice=voice, sample_rate=RATE, created_at=created_at, budget=budget)  # type: ignore[arg-type]


def windows(work: StreamWork, count: int) -> None:
    work.windows.extend(Job(f"{work.key}-{i}") for i in range(count))


def run_windows(sched: Scheduler, now: float) -> list[tuple[int, str]]:
    batch = sched.next_batch(now)
    assert batch is not None and batch.kind is WorkKind.WINDOWS
    for work, job in batch.items:
        sched.window_done(work, job.samples, now)  # type: ignore[attr-defined]
    return [(work.key, job.name) for work, job in batch.items]  # type: ignore[attr-defined]


def two_sentences_first_encoded(windows_of_first: list[str]) -> Scheduler:
    """One stream with two sentences queued, the first encoded into these windows; one window per batch."""
    sched = Scheduler(SchedulerConfig(sentence_lead_windows=1, max_batch_windows=1, max_ahead_s=100))
    s = stream(1)
    sched.add_stream(s)
    sched.add_segment(1, "First.")
    sched.add_segment(1, "Second.")
    batch = sched.next_batch(0.0)
    assert batch is not None and batch.kind is WorkKind.SENTENCES
    sched.sentence_done(s, [Job(name) for name in windows_of_first])
    return sched


def test_nothing_to_do_gives_no_batch() -> None:
    sched = Scheduler()
    sched.add_stream(stream(1))
    assert sched.next_batch(0.0) is None


def test_new_stream_sentence_goes_before_windows_of_running_streams() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=4))
    old = stream(1)
    sched.add_stream(old)
    windows(old, 3)
    run_windows(sched, 0.0)  # old has produced audio now
    windows(old, 3)
    new = stream(2, created_at=1.0)
    sched.add_stream(new)
    sched.add_segment(2, "Hello there.")
    batch = sched.next_batch(1.0)
    assert batch is not None
    assert batch.kind is WorkKind.SENTENCES
    assert [w.key for w, _ in batch.items] == [2]


def test_first_window_of_a_new_stream_beats_every_deadline() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1))
    running = stream(1)
    sched.add_stream(running)
    windows(running, 1)
    run_windows(sched, 0.0)
    windows(running, 2)
    fresh = stream(2, created_at=5.0)
    sched.add_stream(fresh)
    windows(fresh, 2)
    # running's deadline (0.5 s) is long past at t=5, yet the new stream's first window goes first.
    assert run_windows(sched, 5.0) == [(2, "2-0")]


def test_windows_run_earliest_playback_deadline_first() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=1, max_ahead_s=100))
    a, b = stream(1), stream(2)
    for s in (a, b):
        sched.add_stream(s)
        windows(s, 6)
    run_windows(sched, 0.0)  # a: first audio at 0
    run_windows(sched, 0.0)  # b: first audio at 0
    # a is given one more window: its deadline moves later than b's, so b is next.
    run_windows(sched, 0.1)
    order = [run_windows(sched, 0.2)[0][0] for _ in range(4)]
    assert order == [2, 1, 2, 1]


def test_a_first_window_batch_takes_one_window_per_new_stream() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=8))
    for key in (1, 2):
        s = stream(key)
        sched.add_stream(s)
        windows(s, 5)
    names = run_windows(sched, 0.0)
    assert names == [(1, "1-0"), (2, "2-0")]


def test_look_ahead_is_bounded() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=64, max_ahead_s=1.0))
    s = stream(1)
    sched.add_stream(s)
    windows(s, 20)
    run_windows(sched, 0.0)  # first window: 0.5 s of audio
    run_windows(sched, 0.0)
    # At t=0 the stream may be at most ~1 s (+ one window) ahead of its clock.
    assert s.produced_samples / RATE <= 1.0 + 0.5
    assert sched.next_batch(0.0) is None
    wake = sched.next_wakeup(0.0)
    assert wake is not None and 0 < wake <= 1.0
    # Once playback catches up, it runs again.
    assert sched.next_batch(wake + 0.01) is not None


def test_budget_exhausted_pauses_the_stream() -> None:
    class Budget:
        full = True

        def exhausted(self) -> bool:
            return self.full

    budget = Budget()
    sched = Scheduler()
    s = stream(1, budget=budget)
    sched.add_stream(s)
    windows(s, 3)
    assert sched.next_batch(0.0) is None
    budget.full = False
    assert sched.next_batch(0.0) is not None


def test_cancel_removes_queued_work_and_in_flight_results_are_ignored() -> None:
    sched = Scheduler()
    s = stream(1)
    sched.add_stream(s)
    sched.add_segment(1, "One.")
    sched.add_segment(1, "Two.")
    batch = sched.next_batch(0.0)
    assert batch is not None and batch.kind is WorkKind.SENTENCES
    removed = sched.remove_stream(1)
    assert removed is s and s.cancelled
    assert not s.segments
    sched.sentence_done(s, [Job("late")])  # the batch in flight finishes after the cancel
    assert not s.windows
    assert sched.queue_depth() == (0, 0)
    assert sched.next_batch(0.0) is None


def test_next_sentence_is_encoded_before_the_current_one_runs_out() -> None:
    sched = two_sentences_first_encoded(["a", "b", "c"])
    run_windows(sched, 0.0)
    run_windows(sched, 0.0)  # one window left: the next sentence becomes due, after that window
    assert run_windows(sched, 0.0) == [(1, "c")]
    batch = sched.next_batch(0.0)
    assert batch is not None and batch.kind is WorkKind.SENTENCES


def test_fairness_no_stream_starves() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_windows=2, max_ahead_s=1.0))
    streams = [stream(k) for k in range(6)]
    for s in streams:
        sched.add_stream(s)
        windows(s, 200)
    now = 0.0
    for _ in range(300):
        if sched.next_batch(now) is not None:
            run_windows(sched, now)
        now += 0.2  # playback clock advances; the worker makes 1 s of audio per 0.2 s
    produced = [s.produced_samples for s in streams]
    assert min(produced) > 0
    assert max(produced) - min(produced) <= 2 * 500 * 2  # within a couple of windows of each other


def test_admission_follows_measured_capacity() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=0.5))
    assert sched.capacity_streams() == float("inf")  # nothing measured yet: admit
    sched.record_step(busy_s=2.0, audio_s=8.0)  # 4x real time measured
    assert sched.capacity_streams() == pytest.approx(2.0)
    sched.add_stream(stream(1))
    sched.add_segment(1, "Busy.")
    assert sched.admits(0.0)
    sched.add_stream(stream(2, created_at=-5.0))
    assert sched.admits(0.0)  # an open stream that has had no text for seconds costs nothing
    sched.add_segment(2, "Busy too.")
    assert not sched.admits(0.0)
    sched.remove_stream(2)
    assert sched.admits(0.0)


def test_a_stream_still_playing_counts_against_capacity_until_its_audio_has_played() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=1.0))
    sched.record_step(busy_s=1.0, audio_s=2.0)  # 2 streams in real time
    playing = stream(2)
    sched.add_stream(playing)
    windows(playing, 2)
    run_windows(sched, 10.0)
    run_windows(sched, 10.0)  # both of its windows: 1 s of audio, playing from t = 10 s until 11 s
    assert playing.idle()
    sched.add_stream(stream(1))
    sched.add_segment(1, "Busy.")
    grace = sched.config.admission_grace_s
    assert not sched.admits(10.5)  # no queued work, but its listener is still playing: it counts
    assert not sched.admits(11.0 + grace / 2)  # just played out: its next text is likely on its way
    assert sched.admits(11.0 + grace * 2)  # waiting for text long after: it costs nothing


def test_a_burst_of_new_streams_counts_before_their_text_arrives() -> None:
    sched = Scheduler(SchedulerConfig(admission_headroom=1.0))
    sched.record_step(busy_s=1.0, audio_s=2.0)  # 2 streams in real time
    sched.add_stream(stream(1, created_at=5.0))
    assert sched.admits(5.0)
    sched.add_stream(stream(2, created_at=5.0))
    assert not sched.admits(5.0)  # two just opened, no text yet: full
    assert sched.admits(5.0 + sched.config.admission_grace_s * 2)  # both silent since: free again


def test_batches_hold_one_voice() -> None:
    sched = Scheduler()
    a, b = stream(1, voice="x"), stream(2, voice="y")
    for s in (a, b):
        sched.add_stream(s)
        windows(s, 1)
    batch = sched.next_batch(0.0)
    assert batch is not None
    assert {w.voice for w, _ in batch.items} == {batch.voice}


def test_duplicate_stream_key_is_refused() -> None:
    sched = Scheduler()
    sched.add_stream(stream(1))
    with pytest.raises(ValueError, match="already scheduled"):
        sched.add_stream(stream(1))


def test_a_playing_stream_gets_its_next_window_before_its_next_sentence() -> None:
    sched = two_sentences_first_encoded(["a", "b"])
    run_windows(sched, 0.0)  # first audio out; one window left, so the next sentence is due too
    batch = sched.next_batch(0.1)
    assert batch is not None and batch.kind is WorkKind.WINDOWS  # the audio needed first goes first


def test_sentences_batch_with_others_of_about_their_length() -> None:
    sched = Scheduler(SchedulerConfig(max_batch_sentences=8, sentence_length_ratio=2.0))
    texts = {1: "x" * 40, 2: "x" * 300, 3: "x" * 25, 4: "x" * 80, 5: "x" * 81}
    for key, text in texts.items():
        sched.add_stream(stream(key, created_at=key / 10))  # stream 1 is the most urgent
        sched.add_segment(key, text)
    first = sched.next_batch(1.0)
    assert first is not None and first.kind is WorkKind.SENTENCES
    assert [w.key for w, _ in first.items] == [1, 3, 4]  # 20 to 80 characters go with the 40 of stream 1
    for work, _ in first.items:
        sched.sentence_done(work, [])
    second = sched.next_batch(1.0)
    assert second is not None
    assert [w.key for w, _ in second.items] == [2]  # 300 leads now; 81 is less than half of it
    for work, _ in second.items:
        sched.sentence_done(work, [])
    third = sched.next_batch(1.0)
    assert third is not None and [w.key for w, _ in third.items] == [5]
