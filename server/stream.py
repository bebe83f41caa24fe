"""One stream (utterance) on a connection: text in, sentences to the engine, chunks out in order.

The receiver calls ``add_text``/``cancel``/``fail``; text goes through the break parser (pauses) and the
sentence segmenter to the engine; the stream's own task reads the engine's audio, resamples it to the
stream's rate, encodes it, and queues ``chunk`` frames, then exactly one ``done``. A stream ends one of two
ways: it completes (``done`` behind its last chunk), or it is aborted by a cancel or a failure (``done`` on
the outbox's control lane at once, whatever audio of the stream is queued dropped).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

from voxwire.engine.errors import EngineError
from voxwire.engine.handle import StreamHandle
from voxwire.protocol import Chunk, Done, DoneReason, Encoding, Error, ErrorCode, encode
from voxwire.server.breaks import BreakError, BreakParser
from voxwire.server.encodings import encode_audio
from voxwire.server.metrics import Metrics
from voxwire.server.outbox import Outbox
from voxwire.server.segmenter import SentenceSegmenter
from voxwire.server.timeline import WordTimeline

log = logging.getLogger(__name__)

_BREAK_TAG = re.compile(r"<break", re.IGNORECASE)

LOW_AUDIO_S = 1.0
"""A listener with less audio than this left to play gets the sentence still arriving cut at its next clause
boundary (``,`` ``;`` ``:`` dashes), rather than waiting for the sentence's end: a short first sentence
("Let me think.") followed by a long one fed at LLM speed otherwise leaves a gap in the speech."""


@dataclass(frozen=True)
class StreamOptions:
    """What a stream's ``start`` asked for beyond voice, rate and speed."""

    encoding: Encoding | None = None
    """How chunks carry audio; None: PCM16, with no ``encoding`` field on chunks (as before it existed)."""
    max_buffer_delay_s: float | None = None
    """How long text may wait for a sentence end before what is buffered is spoken at a clause or word
    boundary; None: as long as it takes (the segmenter's own rules)."""
    words: bool = False
    """Chunks carry the words whose audio starts in them (``start.words``)."""


@dataclass
class StreamCounters:
    chars: int = 0
    chunks: int = 0
    """Chunks made (seq of the next chunk)."""
    samples: int = 0
    """Samples made (offset of the next chunk)."""
    sent_chunks: int = 0
    sent_samples: int = 0
    first_text_at: float | None = None
    ttfa_s: float | None = None
    first_audio_at: float | None = None
    """When the first chunk was made (time.perf_counter()); the listener's playback clock starts then."""


class StreamSession:
    """One stream's pipeline on a connection; it owns its task (:meth:`start`)."""

    def __init__(
        self,
        stream_id: str,
        engine: StreamHandle,
        sample_rate: int,
        outbox: Outbox,
        segmenter: SentenceSegmenter,
        metrics: Metrics,
        on_end: Callable[[StreamSession], None],
        options: StreamOptions | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.options = options or StreamOptions()
        self.sample_rate = sample_rate
        self._engine = engine
        self._outbox = outbox
        self._segmenter = segmenter
        self._metrics = metrics
        self._on_end = on_end
        self._resampler = (
            None
            if sample_rate == engine.sample_rate
            else soxr.ResampleStream(engine.sample_rate, sample_rate, 1, dtype="int16", quality="HQ")
        )
        self._breaks = BreakParser()
        self._text = ""
        """All of the stream's text as the client sent it (word timings and ``heard`` refer to it)."""
        self._placed = 0
        """Where in ``_text`` the next segment is looked for: after the last segment and break tag."""
        self._timeline = WordTimeline(engine.sample_rate, sample_rate)
        self._voice_samples = 0
        """Samples at the voice's rate received from the engine so far."""
        self._encoding = self.options.encoding or Encoding.PCM16
        self._buffer_timer: asyncio.TimerHandle | None = None
        """Fires ``max_buffer_delay_s`` after text began to wait for a sentence end."""
        self.counters = StreamCounters()
        self.ended: DoneReason | None = None
        """Why the stream ended, once its ``done`` is queued; None while it runs."""
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> bool:
        """True once cancelled or failed: the stream's queued chunks are not sent."""
        return self.ended is not None and self.ended is not DoneReason.COMPLETE

    def start(self) -> None:
        """Start the stream's task: engine audio to chunks, then one ``done``."""
        self._task = asyncio.create_task(self._run(), name=f"voxwire-stream-{self.stream_id!r}")

    # -- receiver side -----------------------------------------------------------------------------------

    def add_text(self, text: str, *, final: bool, flush: bool) -> None:
        """The client's next text: sentences to the engine as they complete, pauses in their place; a
        malformed break tag fails the stream with ``invalid_field``."""
        if self.ended is not None:
            return
        if self.counters.first_text_at is None and text:
            self.counters.first_text_at = time.perf_counter()
        self.counters.chars += len(text)
        self._text += text
        try:
            parts = self._breaks.push(text)
            if flush or final:
                parts += self._breaks.end()
        except BreakError as error:
            self.fail(ErrorCode.INVALID_FIELD, f"text: {error}")
            return
        segments: list[str] = []
        for part in parts:
            if isinstance(part, str):
                segments += self._segmenter.push(part)
            else:  # a pause: what came before it is spoken whole, then the silence
                self._speak(segments + self._segmenter.flush())
                segments = []
                self._skip_break_tag()
                self._engine.add_pause(part)
        if flush or final:
            segments += self._segmenter.flush()
        elif self._audio_left_s() < LOW_AUDIO_S:
            segments += self._segmenter.allow_fragment()
        self._speak(segments)
        if final:
            self._engine.end_input()
        self._watch_buffer(restart=bool(segments))

    def _speak(self, segments: list[str]) -> None:
        """Segments to the engine, each with where it starts in the stream's text (segments are pieces of
        that text in order, stripped, with break tags between them)."""
        for segment in segments:
            at = self._text.find(segment, self._placed)
            if at == -1:
                raise AssertionError(f"segment {segment!r} not found in the stream's text")
            self._placed = at + len(segment)
            self._engine.add_text(segment, at)

    def _skip_break_tag(self) -> None:
        """A pause came from the next break tag in the text: segments are looked for after it."""
        tag = _BREAK_TAG.search(self._text, self._placed)
        if tag is None:
            raise AssertionError("a pause without a break tag in the stream's text")
        self._placed = self._text.index(">", tag.end()) + 1

    def _watch_buffer(self, *, restart: bool) -> None:
        """Keep a timer on text waiting for a sentence end (``max_buffer_delay_s``), from when it began to
        wait: restarted when a segment went out, stopped when nothing waits."""
        delay = self.options.max_buffer_delay_s
        if delay is None:
            return
        waiting = self._segmenter.buffered_chars > 0 and self.ended is None
        if self._buffer_timer is not None and (restart or not waiting):
            self._buffer_timer.cancel()
            self._buffer_timer = None
        if waiting and self._buffer_timer is None:
            loop = asyncio.get_running_loop()
            self._buffer_timer = loop.call_later(delay, self._buffer_delay_over)

    def _buffer_delay_over(self) -> None:
        """Text waited ``max_buffer_delay_s`` for a sentence end: speak it up to a clause or word boundary."""
        self._buffer_timer = None
        if self.ended is not None:
            return
        segments = self._segmenter.cut()
        self._speak(segments)
        self._watch_buffer(restart=True)

    def _audio_left_s(self) -> float:
        """Audio the listener has yet to play of what was made, by a playback clock that starts with the
        first chunk (infinite before it: the first segment is a fragment anyway)."""
        counters = self.counters
        if counters.first_audio_at is None:
            return float("inf")
        played = time.perf_counter() - counters.first_audio_at
        return counters.samples / self.sample_rate - played

    def cancel(self, played: int | None = None) -> None:
        """The client's cancel: drop queued engine work and audio, answer ``done`` at once, with what was
        heard by the client's playhead ``played`` (None: by the samples sent)."""
        self._abort(DoneReason.CANCELLED, played)

    def fail(self, code: ErrorCode, message: str) -> None:
        """An error tied to this stream: an ``error`` frame, then ``done`` with reason ``error``."""
        if self.ended is not None:
            return
        self._outbox.put_control(encode(Error(code=code, message=message, stream=self.stream_id)))
        self._metrics.errors.labels(code=str(code)).inc()
        self._abort(DoneReason.ERROR)

    # -- the stream's task --------------------------------------------------------------------------------

    async def _run(self) -> None:
        self._metrics.stream_tasks.inc()
        try:
            async for block in self._engine.blocks():
                self._timeline.add(self._voice_samples, block.words)
                self._voice_samples += len(block.pcm)
                await self._send_audio(self._resample(block.pcm, last=False))
            await self._send_audio(self._resample(np.zeros(0, np.int16), last=True), last=True)
            self._complete()
        except EngineError as error:
            log.error("stream %r: engine failed: %s", self.stream_id, error)
            self.fail(ErrorCode.INTERNAL, "speech synthesis failed for this stream; the stream was ended")
        except Exception:
            log.exception("stream %r: unexpected failure", self.stream_id)
            self.fail(ErrorCode.INTERNAL, "the server failed on this stream; the stream was ended")
        finally:
            self._metrics.stream_tasks.dec()

    def _resample(self, pcm: np.ndarray, *, last: bool) -> np.ndarray:
        if self._resampler is None:
            return pcm
        out: np.ndarray = self._resampler.resample_chunk(pcm, last=last)
        return out

    async def _send_audio(self, pcm: np.ndarray, *, last: bool = False) -> None:
        if len(pcm) == 0:
            return
        counters = self.counters
        due = self._timeline.due(None if last else counters.samples + len(pcm))
        words = None
        if self.options.words:
            text = self._text
            words = tuple((text[w.start_char : w.end_char], w.start, w.end) for w in due)
        frame = Chunk(
            stream=self.stream_id,
            seq=counters.chunks,
            offset=counters.samples,
            sample_rate=self.sample_rate,
            audio=encode_audio(pcm, self._encoding),
            encoding=self.options.encoding,
            words=words or None,
        )
        counters.chunks += 1
        counters.samples += len(pcm)
        if counters.first_audio_at is None:
            counters.first_audio_at = time.perf_counter()
            if counters.first_text_at is not None:
                counters.ttfa_s = counters.first_audio_at - counters.first_text_at
                self._metrics.first_audio.observe(counters.ttfa_s)
        self._metrics.audio_seconds.inc(len(pcm) / self.sample_rate)
        await self._outbox.put_chunk(self, encode(frame), len(pcm))

    def sent(self, samples: int) -> None:
        self.counters.sent_chunks += 1
        self.counters.sent_samples += samples

    # -- the two ways a stream ends -------------------------------------------------------------------------

    def _complete(self) -> None:
        """All text spoken: ``done`` follows the stream's last chunk and counts every chunk made."""
        counters = self.counters
        self._end(DoneReason.COMPLETE, counters.chunks, counters.samples)

    def _abort(self, reason: DoneReason, played: int | None = None) -> None:
        """Cancelled or failed: engine work and queued chunks are dropped, and ``done`` jumps ahead of all
        audio, counting only what has left for the socket."""
        if self.ended is not None:
            return
        self._engine.cancel()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        sent = self.counters.sent_samples
        heard = self._timeline.heard_chars(sent if played is None else min(played, sent))
        self._end(reason, self.counters.sent_chunks, sent, heard)

    def _end(self, reason: DoneReason, chunks: int, samples: int, heard: int | None = None) -> None:
        """Queue ``done``; ``heard``: the characters of the text heard (a cancelled stream's)."""
        self.ended = reason
        if self._buffer_timer is not None:
            self._buffer_timer.cancel()
            self._buffer_timer = None
        ttfa_s = self.counters.ttfa_s
        ttfa_ms = None if ttfa_s is None else round(ttfa_s * 1000, 1)
        heard_text = None
        if reason is DoneReason.COMPLETE:
            heard = len(self._text)
        elif reason is DoneReason.CANCELLED and heard is not None:
            heard_text = self._text[:heard]
        else:
            heard = None
        done = encode(
            Done(
                stream=self.stream_id,
                reason=reason,
                chunks=chunks,
                samples=samples,
                ttfa_ms=ttfa_ms,
                heard=heard_text,
                heard_chars=heard,
            )
        )
        if reason is DoneReason.COMPLETE:
            self._outbox.put_done(self, done)
        else:
            self._outbox.put_control(done)
        log.info(
            "stream end id=%r reason=%s chars=%d chunks=%d audio_s=%.2f ttfa_ms=%s",
            self.stream_id,
            reason,
            self.counters.chars,
            chunks,
            samples / self.sample_rate,
            ttfa_ms,
        )
        self._metrics.streams_total.labels(reason=str(reason)).inc()
        self._on_end(self)
