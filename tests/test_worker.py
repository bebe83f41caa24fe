"""The engine worker and stream handles with a fake voice (a test double for the model): ordering, end of
stream, cancel, failure isolation and out-of-memory splitting. The real voice runs through them in
tests/test_server_e2e.py."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from voxwire.engine.budget import AudioBudget
from voxwire.engine.errors import EngineError, Overloaded, UnknownVoice
from voxwire.engine.handle import StreamHandle
from voxwire.engine.latent import Latent, SynthesisParams
from voxwire.engine.phonemes import Phonemized
from voxwire.engine.scheduler import FIRST_WINDOW_FRAMES, SchedulerConfig
from voxwire.engine.voice import VoiceInfo
from voxwire.engine.windows import WindowSpec
from voxwire.engine.words import WordIds
from voxwire.engine.work import Piece
from voxwire.engine.worker import EngineWorker

HOP = 4


class EngineCrash(BaseException):
    """Passes every per-step failure handler: the engine thread dies of it."""


class FakeVoice:
    """Each word becomes 10 latent frames whose values encode (word, frame), so order is checkable."""

    def __init__(
        self,
        fail_word: str | None = None,
        max_batch: int | None = None,
        fail_text: str | None = None,
        max_ids: int = 1000,
        crash_text: str | None = None,
        oom_text: str | None = None,
        unknown: frozenset[str] = frozenset(),
    ) -> None:
        self.info = VoiceInfo("fake", "xx", 1000)
        self.default_params = SynthesisParams(0.0, 0.0, 1.0)
        self.hop_length = HOP
        self.fail_word = fail_word
        self.fail_text = fail_text
        self.max_batch = max_batch
        self.window_batches: list[int] = []
        self.sentence_batches: list[int] = []
        self.max_ids = max_ids
        self.encoded_ids: list[int] = []
        self.crash_text = crash_text
        self.oom_text = oom_text
        self.unknown = unknown
        self.broken = False
        """Set to make every call fail from now on, as a device after a sticky CUDA error."""
        self.warm_ups = 0

    def phonemize(self, text: str) -> Phonemized:
        """One id per word, in pieces of at most ``max_ids``."""
        self._check()
        if self.crash_text is not None and self.crash_text in text:
            raise EngineCrash("the engine thread dies")
        if self.oom_text is not None and self.oom_text in text:
            raise torch.OutOfMemoryError("fake OOM on one item")
        if self.fail_text is not None and self.fail_text in text:
            return Phonemized([[-1]])
        ids = [hash(w) % 1000 for w in text.split()]
        pieces = [ids[i : i + self.max_ids] for i in range(0, len(ids), self.max_ids)]
        return Phonemized(pieces, self.unknown)

    def pieces(self, text: str, offset: int = 0) -> tuple[list[Piece], frozenset[str]]:
        """:meth:`phonemize`'s pieces, each id one word of the text (characters counted from ``offset``)."""
        phonemized = self.phonemize(text)
        spans = [match.span() for match in re.finditer(r"\S+", text)]
        pieces: list[Piece] = []
        for ids in phonemized.sentences:
            mine, spans = spans[: len(ids)], spans[len(ids) :]
            words = tuple(WordIds(offset + a, offset + b, i, i + 1) for i, (a, b) in enumerate(mine))
            pieces.append(Piece(tuple(ids), words))
        return pieces, phonemized.unknown

    def warm_up(self, rounds: int = 3) -> None:
        """The known-good check the failure breaker runs."""
        self.warm_ups += 1
        self._check()

    def _check(self) -> None:
        if self.broken:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (fake)")

    def encode(self, ids: list[list[int]], params: list[SynthesisParams]) -> list[Latent]:
        self._check()
        self.sentence_batches.append(len(ids))
        self.encoded_ids += [len(sentence) for sentence in ids]
        if [-1] in ids:
            raise RuntimeError("poisoned sentence")
        latents = []
        for sentence in ids:
            frames = torch.arange(10 * len(sentence), dtype=torch.float32)
            z = frames.expand(2, -1).clone()
            z[1] = torch.tensor([float(i) for i in sentence]).repeat_interleave(10)
            latents.append(
                Latent(prior=z, z=z, durations=torch.full((len(sentence),), 10), ready=z.shape[-1])
            )
        return latents

    def decode_windows(self, jobs: list[tuple[Latent, WindowSpec]]) -> list[np.ndarray]:
        self.window_batches.append(len(jobs))
        if self.max_batch is not None and len(jobs) > self.max_batch:
            raise torch.cuda.OutOfMemoryError("fake OOM")
        out = []
        for latent, spec in jobs:
            if self.fail_word is not None and float(hash(self.fail_word) % 1000) in latent.z[1].tolist():
                raise RuntimeError("poisoned window")
            frames = latent.z[0, spec.start : spec.end].numpy().astype(np.int16)
            out.append(np.repeat(frames, HOP))
        return out


async def read_all(stream: StreamHandle) -> np.ndarray:
    blocks = [block async for block in stream]
    return np.concatenate(blocks) if blocks else np.zeros(0, np.int16)


def expected_frames(words: int) -> np.ndarray:
    return np.repeat(np.arange(10 * words, dtype=np.int16), HOP)


async def started(
    voice: FakeVoice,
    on_death: Callable[[str], None] | None = None,
    threads: int | None = None,
    first_window_frames: int = FIRST_WINDOW_FRAMES,
    **config: Any,
) -> EngineWorker:
    # FakeVoice is a duck-typed Voice.
    scheduler = SchedulerConfig(**config)
    worker = EngineWorker(
        [voice],  # type: ignore[list-item]
        scheduler,
        on_death=on_death,
        workers=scheduler.workers,
        threads=threads,
        first_window_frames=first_window_frames,
    )
    worker.start()
    return worker


async def test_audio_comes_in_order_and_the_stream_ends_after_the_last_window() -> None:
    worker = await started(FakeVoice(), max_ahead_s=1e9)
    stream = worker.open_stream()
    stream.add_text("one two three four five six seven")  # 70 frames: windows 32 + 38
    stream.add_text("eight nine")
    stream.end_input()
    audio = await read_all(stream)
    expected = np.concatenate([expected_frames(7), expected_frames(2)])
    np.testing.assert_array_equal(audio, expected)
    await worker.stop()


async def test_a_stream_that_asks_for_no_first_window_gets_the_engines() -> None:
    worker = await started(FakeVoice(), max_ahead_s=1e9, first_window_frames=32)
    default, asked = worker.open_stream(), worker.open_stream(first_window_frames=16)
    for stream in (default, asked):
        stream.add_text("one two three four five six seven")  # 70 frames
        stream.end_input()
    sizes = [[len(block.pcm) for block in [b async for b in stream.blocks()]] for stream in (default, asked)]
    assert sizes == [[32 * HOP, 38 * HOP], [16 * HOP, 32 * HOP, 22 * HOP]]
    await worker.stop()


async def test_each_sentences_words_come_with_its_first_block_timed_by_its_durations() -> None:
    worker = await started(FakeVoice(max_ids=3), max_ahead_s=1e9)
    stream = worker.open_stream()
    stream.add_text("one two three four", offset=100)  # pieces of 3 and 1 ids, 10 frames an id
    stream.end_input()
    blocks = [block async for block in stream.blocks()]
    timed = [(i, w.start_char, w.end_char, w.start, w.end) for i, b in enumerate(blocks) for w in b.words]
    frame = 10 * HOP
    first_of_second = next(i for i, b in enumerate(blocks) if b.words and b.words[0].start_char == 114)
    assert timed == [
        (0, 100, 103, 0, frame),
        (0, 104, 107, frame, 2 * frame),
        (0, 108, 113, 2 * frame, 3 * frame),
        (first_of_second, 114, 118, 0, frame),  # counted from its own sentence's first block
    ]
    assert sum(len(b.pcm) for b in blocks[:first_of_second]) == 3 * frame
    await worker.stop()


async def test_a_long_text_is_encoded_one_bounded_piece_per_step_and_spoken_whole() -> None:
    voice = FakeVoice(max_ids=4)
    worker = await started(voice, max_ahead_s=1e9, max_batch_sentences=8)
    stream = worker.open_stream()
    stream.add_text(" ".join(["word"] * 23))  # 23 ids: pieces of 4, 4, 4, 4, 4, 3
    stream.end_input()
    expected = np.concatenate([*[expected_frames(4)] * 5, expected_frames(3)])  # each piece a sentence
    np.testing.assert_array_equal(await read_all(stream), expected)
    assert voice.encoded_ids == [4, 4, 4, 4, 4, 3]  # never more than max_ids in one sentence stage
    await worker.stop()


async def test_empty_input_ends_with_no_audio() -> None:
    worker = await started(FakeVoice())
    stream = worker.open_stream()
    stream.add_text("   ")
    stream.end_input()
    assert len(await read_all(stream)) == 0
    await worker.stop()


async def test_a_failing_item_fails_only_its_stream() -> None:
    voice = FakeVoice(fail_word="poison")
    worker = await started(voice, max_ahead_s=1e9, max_batch_windows=8)
    good = [worker.open_stream() for _ in range(3)]
    bad = worker.open_stream()
    for s in good:
        s.add_text("alpha beta gamma")
        s.end_input()
    bad.add_text("poison here")
    bad.end_input()
    with pytest.raises(EngineError, match="synthesis failed"):
        await read_all(bad)
    for s in good:
        np.testing.assert_array_equal(await read_all(s), expected_frames(3))
    assert worker.stats().streams == 0
    await worker.stop()


async def test_a_failing_sentence_fails_only_its_stream_and_the_rest_of_its_batch_is_served() -> None:
    voice = FakeVoice(fail_text="poison")
    worker = await started(voice, max_ahead_s=1e9, max_batch_sentences=8)
    streams = [worker.open_stream() for _ in range(4)]
    for index, s in enumerate(streams):
        s.add_text("poison pill" if index == 1 else "alpha beta")
        s.end_input()
    with pytest.raises(EngineError, match="synthesis failed: RuntimeError"):
        await read_all(streams[1])
    for index in (0, 2, 3):
        np.testing.assert_array_equal(await read_all(streams[index]), expected_frames(2))
    assert voice.sentence_batches[0] == 4  # one batch first, then halves around the failing item
    assert worker.stats().streams == 0
    await worker.stop()


async def test_out_of_memory_splits_the_batch() -> None:
    voice = FakeVoice(max_batch=1)
    worker = await started(voice, max_ahead_s=1e9, max_batch_windows=8)
    streams = [worker.open_stream() for _ in range(4)]
    for s in streams:
        s.add_text("a b c d")
        s.end_input()
    for s in streams:
        np.testing.assert_array_equal(await read_all(s), expected_frames(4))
    assert max(voice.window_batches) > 1  # batches were tried ...
    await worker.stop()


async def test_cancel_drops_queued_work_and_frees_the_budget() -> None:
    budget = AudioBudget(limit_s=0.05)  # 50 samples at 1000 Hz: the stream pauses almost at once
    worker = await started(FakeVoice(), max_ahead_s=1e9)
    stream = worker.open_stream(budget=budget)
    stream.add_text(" ".join(["word"] * 50))
    stream.end_input()
    first = await anext(stream)
    assert len(first) > 0
    stream.cancel()
    # Events the engine posted before the cancel may still be on their way to the loop; they are dropped
    # (their budget given back) as they arrive, all before a callback queued now.
    settled = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon_threadsafe(settled.set_result, None)
    await settled
    assert budget.buffered_s == pytest.approx(0.0)
    assert worker.stats().streams == 0 and worker.stats().queued_windows == 0
    await worker.stop()


async def test_budget_pauses_generation_until_the_client_reads() -> None:
    loop = asyncio.get_running_loop()
    held = asyncio.Event()

    class WatchedBudget(AudioBudget):
        """Tells the test when the engine starts waiting on it (the flag is set on the engine thread)."""

        _waiting = False

        @property  # type: ignore[override]  # a property over the base class's plain attribute
        def waiting(self) -> bool:
            return self._waiting

        @waiting.setter
        def waiting(self, value: bool) -> None:
            self._waiting = value
            if value:
                loop.call_soon_threadsafe(held.set)

    budget = WatchedBudget(limit_s=0.2)
    worker = await started(FakeVoice(), max_ahead_s=1e9, max_batch_windows=1)
    stream = worker.open_stream(budget=budget)
    stream.add_text(" ".join(["word"] * 40))
    stream.end_input()
    await asyncio.wait_for(held.wait(), 30)  # nothing is read: the budget fills and the engine holds ...
    assert worker.stats().paused_streams == 1  # ... the stream's remaining windows
    assert budget.buffered_s < 0.2 + 64 * HOP / 1000
    audio = await read_all(stream)
    assert len(audio) == 400 * HOP
    await worker.stop()


async def test_unknown_voice_and_admission() -> None:
    worker = await started(FakeVoice())
    with pytest.raises(UnknownVoice):
        worker.open_stream("nobody")
    worker._scheduler.record_step(busy_s=2.0, audio_s=1.0)  # as if measured: 0.5x real time
    busy = worker.open_stream(budget=AudioBudget(limit_s=0.0))  # full budget: its work stays queued
    busy.add_text("one two three")
    with pytest.raises(Overloaded):
        worker.open_stream()
    await worker.stop()


async def test_calibration_gives_a_cold_engine_a_first_capacity() -> None:
    worker = EngineWorker([FakeVoice()], SchedulerConfig(admission_headroom=0.8, workers=2), workers=2)
    assert worker.stats().capacity_streams == float("inf")  # nothing measured: it would admit anything
    rate = worker.calibrate()
    assert rate > 0
    assert worker.stats().capacity_streams == pytest.approx(rate * 0.8 * 2)  # per thread, as measured


async def test_an_idle_moment_after_work_gives_freed_memory_back_once() -> None:
    released = asyncio.Event()
    calls: list[int] = []

    def release() -> None:
        calls.append(1)
        loop.call_soon_threadsafe(released.set)

    loop = asyncio.get_running_loop()
    worker = EngineWorker(
        [FakeVoice()],  # type: ignore[list-item]  # duck-typed stand-in for Voice
        SchedulerConfig(max_ahead_s=1e9),
        release_memory=release,
        release_interval_s=0.0,
    )
    worker.start()
    stream = worker.open_stream()
    stream.add_text("one two three")
    stream.end_input()
    await read_all(stream)
    await released.wait()
    await worker.stop()
    assert calls == [1]  # idle with no work since: not again


async def test_the_engine_thread_dying_fails_every_open_stream_and_reports_why() -> None:
    died: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    worker = await started(FakeVoice(crash_text="crash"), on_death=died.set_result, max_ahead_s=1e9)
    calm = [worker.open_stream() for _ in range(2)]
    for stream in calm:
        stream.add_text("a b c")  # queued behind the crash, or spoken: either way the stream ends
    crashing = worker.open_stream()
    crashing.add_text("crash now")
    reason = await died
    assert "EngineCrash" in reason
    for stream in [*calm, crashing]:
        with pytest.raises(EngineError, match="the engine stopped"):
            await read_all(stream)  # input never ended: only the engine's death ends these streams
    with pytest.raises(Overloaded, match="stopped"):
        worker.open_stream()
    assert worker.stopped_because == reason
    await worker.stop()


async def test_one_clients_failing_text_over_and_over_does_not_stop_the_engine() -> None:
    died: list[str] = []
    voice = FakeVoice(fail_text="poison")
    worker = await started(voice, on_death=died.append, max_ahead_s=1e9)
    for _ in range(7):
        bad = worker.open_stream()
        bad.add_text("poison again")
        bad.end_input()
        with pytest.raises(EngineError):
            await read_all(bad)
    assert voice.warm_ups == 2  # checked itself after 3 and 6 failures in a row, and went on
    good = worker.open_stream()
    good.add_text("still here")
    good.end_input()
    np.testing.assert_array_equal(await read_all(good), expected_frames(2))
    assert died == []
    await worker.stop()


async def test_a_device_that_fails_everything_trips_the_breaker_and_stops_the_engine() -> None:
    died: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    voice = FakeVoice()
    worker = await started(voice, on_death=died.set_result, max_ahead_s=1e9)
    voice.broken = True
    streams = [worker.open_stream() for _ in range(3)]
    for stream in streams:
        stream.add_text("anything at all")
        stream.end_input()
    reason = await died
    assert "EngineBroken" in reason and voice.warm_ups == 1
    for stream in streams:
        with pytest.raises(EngineError):
            await read_all(stream)
    await worker.stop()


async def test_out_of_memory_on_one_item_fails_only_it_and_trips_nothing() -> None:
    died: list[str] = []
    voice = FakeVoice(oom_text="huge")
    worker = await started(voice, on_death=died.append, max_ahead_s=1e9)
    for _ in range(5):
        big = worker.open_stream()
        big.add_text("huge text")
        big.end_input()
        with pytest.raises(EngineError, match="OutOfMemoryError"):
            await read_all(big)
    assert voice.warm_ups == 0 and died == []
    await worker.stop()


async def test_symbols_a_voice_lacks_are_logged_once_per_stream(caplog: pytest.LogCaptureFixture) -> None:
    worker = await started(FakeVoice(unknown=frozenset({"\u2603"})), max_ahead_s=1e9)
    streams = [worker.open_stream() for _ in range(2)]
    for stream in streams:
        for text in ("one two", "three four", "five six"):
            stream.add_text(text)
        stream.end_input()
    for stream in streams:
        await read_all(stream)
    await worker.stop()
    lines = [r for r in caplog.records if "no phoneme for" in r.getMessage()]
    assert len(lines) == 2  # one per stream, not one per segment


async def test_several_workers_serve_every_stream_whole_and_in_order() -> None:
    voice = FakeVoice()
    worker = await started(voice, max_ahead_s=1e9, workers=3)
    streams = [worker.open_stream() for _ in range(8)]
    for index, stream in enumerate(streams):
        stream.add_text(" ".join(["word"] * (3 + index)))
        stream.add_text("two more")
        stream.end_input()
    for index, stream in enumerate(streams):
        expected = np.concatenate([expected_frames(3 + index), expected_frames(2)])
        np.testing.assert_array_equal(await read_all(stream), expected)
    await worker.stop()


async def test_workers_run_their_batches_at_the_same_time() -> None:
    both_inside = threading.Barrier(2, timeout=30)

    class MeetingVoice(FakeVoice):
        def decode_windows(self, jobs: list[tuple[Latent, WindowSpec]]) -> list[np.ndarray]:
            both_inside.wait()  # passes only when two workers decode at once; else it breaks after 30 s
            return super().decode_windows(jobs)

    worker = await started(
        MeetingVoice(), max_ahead_s=1e9, workers=2, max_batch_windows=1, max_batch_sentences=1
    )
    streams = [worker.open_stream() for _ in range(2)]
    for stream in streams:
        stream.add_text("one two three four five")
        stream.end_input()
    for stream in streams:
        assert len(await read_all(stream)) == 50 * HOP
    assert not both_inside.broken
    await worker.stop()


async def test_the_first_thread_keeps_to_short_steps_while_realtime_streams_are_open() -> None:
    """Relaxed windows (long steps) go to the other threads only, so a new stream waits at most one short
    step for the first thread; both threads still do the work."""
    decoded: list[tuple[str, bool]] = []

    class RecordingVoice(FakeVoice):
        def decode_windows(self, jobs: list[tuple[Latent, WindowSpec]]) -> list[np.ndarray]:
            name = threading.current_thread().name
            decoded.extend((name, window.relaxed) for _, window in jobs)
            return super().decode_windows(jobs)

    worker = await started(
        RecordingVoice(), max_ahead_s=1e9, workers=2, max_batch_windows=1, max_batch_sentences=1
    )
    streams = [worker.open_stream() for _ in range(4)]
    for stream in streams:
        for _ in range(6):
            stream.add_text(" ".join(["word"] * 40))
        stream.end_input()
    for stream in streams:
        assert len(await read_all(stream)) == 6 * 40 * 10 * HOP
    await worker.stop()
    threads = {name for name, _ in decoded}
    assert threads == {"voxwire-engine-0", "voxwire-engine-1"}
    assert any(relaxed for _, relaxed in decoded)
    assert not any(relaxed for name, relaxed in decoded if name == "voxwire-engine-0")


async def test_a_pause_is_exact_silence_between_the_audio_of_its_neighbours() -> None:
    voice = FakeVoice()
    worker = await started(voice, max_ahead_s=1e9, max_batch_windows=4)
    stream = worker.open_stream()
    stream.add_text("one two")
    stream.add_pause(0.5)  # 500 samples at the fake voice's 1000 Hz
    stream.add_text("three")
    stream.end_input()
    expected = np.concatenate([expected_frames(2), np.zeros(500, np.int16), expected_frames(1)])
    np.testing.assert_array_equal(await read_all(stream), expected)
    # The first sentence's 20 frames as a first window of 16 and the rest, the second's 10 in one: the
    # silence never reached the voice.
    assert sum(voice.window_batches) == 3
    await worker.stop()


async def test_asap_streams_have_their_own_limit_and_ignore_capacity() -> None:
    worker = await started(FakeVoice(), max_asap_streams=1)
    worker._scheduler.record_step(busy_s=2.0, audio_s=1.0)  # as if measured: 0.5x real time
    busy = worker.open_stream(budget=AudioBudget(limit_s=0.0))
    busy.add_text("one two three")
    with pytest.raises(Overloaded, match="capacity"):
        worker.open_stream()
    fast = worker.open_stream(asap=True)  # spare capacity only: not refused for capacity
    with pytest.raises(Overloaded, match="asap"):
        worker.open_stream(asap=True)
    fast.add_text("four five")
    fast.end_input()
    np.testing.assert_array_equal(await read_all(fast), expected_frames(2))
    worker.open_stream(asap=True).cancel()  # its slot is free again
    await worker.stop()


async def test_each_compute_thread_runs_torch_at_the_engines_thread_count() -> None:
    """The compute threads set their own intra-op thread count (a new thread's OpenMP need not follow one
    set in another thread), to the engine's, whatever the thread that starts them has."""
    seen: list[int] = []

    class CountingVoice(FakeVoice):
        def encode(self, ids: list[list[int]], params: list[SynthesisParams]) -> list[Latent]:
            seen.append(torch.get_num_threads())
            return super().encode(ids, params)

    before = torch.get_num_threads()
    worker = await started(CountingVoice(), threads=before + 1, workers=2)
    streams = [worker.open_stream() for _ in range(4)]
    for stream in streams:
        stream.add_text("one two")
        stream.end_input()
    for stream in streams:
        assert len(await read_all(stream)) == 20 * HOP
    await worker.stop()
    assert torch.get_num_threads() == before  # this thread's count is its own
    torch.set_num_threads(before)  # and torch's default for threads to come is this one's again
    assert seen and set(seen) == {before + 1}
