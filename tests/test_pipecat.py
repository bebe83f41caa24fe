"""The Pipecat service against a real voxwire server: Pipecat's own pipeline machinery (Pipeline,
PipelineWorker, WorkerRunner) around VoxwireTTSService, real frames and real audio, no mock of either side.
Skipped where pipecat-ai is not installed (`pip install -e ".[pipecat]"`)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

pytest.importorskip("pipecat")

from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voxwire.pipecat import VoxwireTTSService
from voxwire.protocol import Done
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.slow

RATE = 16000  # Pipecat's output rate, not the voice's 22050 Hz: the service must take it from the pipeline
REPLY = "Sure, here is the plan for today. We meet at noon, then we walk to the old harbour together."
STORY = (
    "Once upon a time, in a small village by the sea, there lived an old fisherman and his wife. "
    "Every morning he rowed out beyond the rocks and cast his nets into the cold grey water, "
    "and every evening he came home with a story about the fish that got away."
)


@dataclass
class Seen:
    at: float
    frame: Frame


class Collector(FrameProcessor):
    """The last processor of the pipeline: records every downstream frame in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Seen] = []
        self.changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self.frames.append(Seen(time.monotonic(), frame))
            self.changed.set()
        await self.push_frame(frame, direction)

    def of(self, kind: type[Frame]) -> list[Frame]:
        return [seen.frame for seen in self.frames if isinstance(seen.frame, kind)]

    async def wait_for(self, check: Callable[[], bool], within: float = 60.0) -> None:
        async with asyncio.timeout(within):
            while not check():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Bot:
    tts: VoxwireTTSService
    out: Collector
    worker: PipelineWorker
    done: dict[str, Done] = field(default_factory=dict)
    log: list[tuple[float, str]] = field(default_factory=list)
    done_event: asyncio.Event = field(default_factory=asyncio.Event)
    connects: int = 0

    async def say(self, *frames: Frame) -> None:
        await self.worker.queue_frames(list(frames))

    async def wait_done(self, stream: str, within: float = 60.0) -> Done:
        async with asyncio.timeout(within):
            while stream not in self.done:
                self.done_event.clear()
                await self.done_event.wait()
        return self.done[stream]


@pytest.fixture
async def bot(live_server: ServerProcess) -> AsyncIterator[Bot]:
    tts = VoxwireTTSService(url=live_server.ws_url)
    out = Collector()
    worker = PipelineWorker(
        Pipeline([tts, out]),
        params=PipelineParams(audio_out_sample_rate=RATE),
        cancel_on_idle_timeout=False,
    )
    bot = Bot(tts, out, worker)

    @tts.event_handler("on_stream_done")
    async def on_stream_done(_tts: VoxwireTTSService, done: Done) -> None:
        bot.done[done.stream] = done
        line = f"done      {done.stream[:8]} {done.reason}, {done.samples} samples, heard {done.heard!r}"
        bot.log.append((time.monotonic(), line))
        bot.done_event.set()

    @tts.event_handler("on_connected")
    async def on_connected(_tts: VoxwireTTSService) -> None:
        bot.connects += 1

    sink = logger.add(
        lambda message: bot.log.append((time.monotonic(), "service   " + message.record["message"])),
        level="DEBUG",
        filter=lambda record: record["name"].startswith("voxwire.pipecat") and "cancel" in record["message"],
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await out.wait_for(lambda: tts.hello is not None, within=30)
        yield bot
    finally:
        logger.remove(sink)
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(running, timeout=30)


def words_of(text: str) -> list[str]:
    return re.findall(r"\w+(?:'\w+)?", text)


def tokens(text: str) -> list[str]:
    """The text as an LLM's tokens arrive: words with the space before them, punctuation apart."""
    return re.findall(r"\s*\w+|\s*[^\w\s]+", text)


def llm_turn(text: str) -> list[Frame]:
    return [LLMFullResponseStartFrame(), *(LLMTextFrame(t) for t in tokens(text)), LLMFullResponseEndFrame()]


async def test_a_streamed_turn_gives_audio_at_the_pipeline_rate_and_each_word_in_order(bot: Bot) -> None:
    await bot.say(*llm_turn(REPLY))
    await bot.out.wait_for(lambda: bool(bot.out.of(TTSStoppedFrame)))
    (started,) = bot.out.of(TTSStartedFrame)
    context = started.context_id
    audio = [f for f in bot.out.of(TTSAudioRawFrame) if f.context_id == context]
    assert audio and all(f.sample_rate == RATE and f.num_channels == 1 for f in audio)
    samples = sum(len(f.audio) // 2 for f in audio)
    assert samples > RATE * 3, samples  # a real reply's worth of speech, not silence or a stub
    done = await bot.wait_done(context)
    assert (done.reason, done.samples) == ("complete", samples)  # everything the server sent came through

    words = bot.out.of(TTSTextFrame)
    assert [w.text for w in words] == words_of(REPLY)
    stamps = [w.pts for w in words]
    assert all(isinstance(p, int) for p in stamps) and stamps == sorted(stamps), stamps
    span_s = (stamps[-1] - stamps[0]) / 1e9
    assert 0.5 * samples / RATE < span_s < samples / RATE, (span_s, samples / RATE)


async def test_an_interruption_cancels_the_stream_and_nothing_of_it_follows(bot: Bot) -> None:
    # Mid-turn: the LLM's tokens are in, its reply has not ended (no LLMFullResponseEndFrame yet).
    await bot.say(*llm_turn(STORY)[:-1])
    await bot.out.wait_for(lambda: len(bot.out.of(TTSAudioRawFrame)) >= 2)
    (started,) = bot.out.of(TTSStartedFrame)
    context = started.context_id
    first_audio = next(seen.at for seen in bot.out.frames if isinstance(seen.frame, TTSAudioRawFrame))
    await asyncio.sleep(max(0.0, first_audio + 1.5 - time.monotonic()))  # the listener hears 1.5 s of it
    await bot.worker.queue_frame(InterruptionFrame())
    done = await bot.wait_done(context, within=30)
    assert done.reason == "cancelled"  # the server saw a cancel, on the same connection
    assert done.heard is not None and STORY.startswith(done.heard), done.heard
    assert 1 <= len(words_of(done.heard)) < len(words_of(STORY)) // 2, done.heard
    await asyncio.sleep(2.0)  # long enough for any audio still in flight to have shown up

    frames = [seen.frame for seen in bot.out.frames]
    cut = next(i for i, f in enumerate(frames) if isinstance(f, InterruptionFrame))
    after = [f for f in frames[cut + 1 :] if getattr(f, "context_id", None) == context]
    audio_after = [f for f in after if isinstance(f, TTSAudioRawFrame)]
    assert len(audio_after) <= 1, audio_after
    assert after == audio_after  # at most one chunk, then nothing at all of that context
    spoken_before = [f.text for f in frames[:cut] if isinstance(f, TTSTextFrame)]
    assert spoken_before == words_of(STORY)[: len(spoken_before)]

    # The next turn goes out on the same connection, at once.
    await bot.say(*llm_turn(REPLY))
    await bot.out.wait_for(
        lambda: len(bot.out.of(TTSStartedFrame)) == 2 and bool(bot.out.of(TTSStoppedFrame))
    )
    second = bot.out.of(TTSStartedFrame)[1].context_id
    assert (await bot.wait_done(second)).reason == "complete"
    assert bot.connects == 1

    log = list(bot.log)
    for seen in bot.out.frames:
        f = seen.frame
        if isinstance(f, TTSStartedFrame):
            log.append((seen.at, f"context   {f.context_id[:8]} started"))
        elif isinstance(f, TTSAudioRawFrame):
            log.append((seen.at, f"audio     {f.context_id[:8]} {len(f.audio) // 2} samples"))
        elif isinstance(f, TTSTextFrame):
            log.append(
                (seen.at, f"word      {f.context_id and f.context_id[:8]} {f.text!r} pts {f.pts / 1e9:.3f} s")
            )
        elif isinstance(f, (InterruptionFrame, TTSStoppedFrame)):
            log.append((seen.at, f"{type(f).__name__} {getattr(f, 'context_id', None) or ''}"))
    t0 = min(at for at, _ in log)
    print("\npipecat log of an interrupted turn and the next (seconds; context ids cut to 8 characters):")
    print("\n".join(f"{at - t0:7.3f}  {line}" for at, line in sorted(log, key=lambda item: item[0])))
