"""VoxwireTTSService: Pipecat's text-to-speech over one voxwire WebSocket connection.

Shaped like Pipecat's own WebSocket services (CartesiaTTSService): one voxwire stream per Pipecat audio
context (its id is the stream id), text sent as it arrives (token by token by default; voxwire finds the
sentences), `chunk.words` turned into Pipecat word timestamps, an interruption sent as `cancel` with the
playhead (`cancel.played`) on the same connection, no reconnect. The output rate is Pipecat's
(`StartFrame.audio_out_sample_rate`, through the processor setup) unless given here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, StartFrame, TTSAudioRawFrame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TextAggregationMode, WebsocketTTSService
from websockets.protocol import State

from voxwire.protocol import (
    Cancel,
    Chunk,
    Done,
    Draining,
    Error,
    Hello,
    Pace,
    ProtocolError,
    Start,
    Text,
    decode_server,
    encode,
)

MIN_RATE, MAX_RATE = 8000, 48000


@dataclass
class _Stream:
    """What the service knows of one voxwire stream (one Pipecat audio context)."""

    rate: int
    final: bool = False
    cancelled: bool = False
    first_push: float | None = None  # monotonic time its first audio went downstream
    pushed: int = 0  # samples pushed downstream

    def played(self, now: float) -> int:
        """The playhead estimate: audio plays in real time from when its first chunk went downstream."""
        if self.first_push is None:
            return 0
        return min(self.pushed, int((now - self.first_push) * self.rate))


class VoxwireTTSService(WebsocketTTSService):
    """Text to speech from a voxwire server, with word timestamps and cancel on interruption.

    Event handlers (besides those of WebsocketTTSService):
        on_stream_done: called with the service and the stream's `Done` frame (reason, samples, and
            after an interruption `heard`: the text the listener heard, for the assistant's history).
    """

    _websocket: Any  # the connection (websockets' ClientConnection), None while there is none

    def __init__(
        self,
        *,
        url: str = "ws://127.0.0.1:8765/v1/ws",
        token: str | None = None,
        voice: str | None = None,
        sample_rate: int | None = None,
        speed: float | None = None,
        pace: Pace | None = None,
        first_chunk_ms: int | None = None,
        max_buffer_delay_ms: int | None = None,
        text_aggregation_mode: TextAggregationMode = TextAggregationMode.TOKEN,
        **kwargs: Any,
    ) -> None:
        """Connect to `url` (voxwire's `/v1/ws`) at setup.

        `voice` is an id from the server's hello (default: its first voice); `sample_rate` overrides
        Pipecat's output rate (8000 to 48000); `speed`, `pace`, `first_chunk_ms` and `max_buffer_delay_ms`
        are voxwire's start options (docs/protocol.md). Text goes out token by token by default, since
        voxwire cuts sentences itself; `TextAggregationMode.SENTENCE` sends Pipecat's sentences instead.
        """
        super().__init__(
            text_aggregation_mode=text_aggregation_mode,
            push_text_frames=False,
            push_start_frame=True,
            pause_frame_processing=False,
            sample_rate=sample_rate,
            settings=TTSSettings(model=None, voice=voice, language=None),
            **kwargs,
        )
        self._register_event_handler("on_stream_done")
        self._url = url
        self._token = token
        self._voice = voice
        self._speed = speed
        self._pace = pace
        self._first_chunk_ms = first_chunk_ms
        self._max_buffer_delay_ms = max_buffer_delay_ms
        self._hello: Hello | None = None
        self._streams: dict[str, _Stream] = {}
        self._receive_task: Any = None

    @property
    def hello(self) -> Hello | None:
        """The server's hello on the current connection (voices, limits, options)."""
        return self._hello

    def can_generate_metrics(self) -> bool:
        """TTFB and usage metrics are supported."""
        return True

    async def start(self, frame: StartFrame) -> None:
        """Connect, once the output rate is known (the pipeline's, from its start, unless given here)."""
        await super().start(frame)
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise ValueError(f"voxwire speaks at {MIN_RATE} to {MAX_RATE} Hz, not {self.sample_rate}")
        await self._connect()

    # Connection

    async def _connect(self) -> None:
        await super()._connect()
        await self._connect_websocket()
        if self._websocket and not self._receive_task:
            self._receive_task = self.create_task(self._receive_task_handler(self._report_error))

    async def _disconnect(self) -> None:
        await super()._disconnect()
        if self._receive_task:
            await self.cancel_task(self._receive_task)
            self._receive_task = None
        await self._disconnect_websocket()

    async def _connect_websocket(self) -> None:
        if self._websocket and self._websocket.state is State.OPEN:
            return
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            websocket = await self._websocket_connect(
                self._url, additional_headers=headers, max_size=2**22, compression=None
            )
            first = decode_server(await websocket.recv())
        except Exception as e:
            self._websocket = None
            await self.push_error(error_msg=f"voxwire: cannot connect to {self._url}: {e}", exception=e)
            await self._call_event_handler("on_connection_error", f"{e}")
            return
        if not isinstance(first, Hello):
            await websocket.close()
            self._websocket = None
            await self.push_error(error_msg=f"voxwire: the server refused the connection: {first}")
            return
        if self._voice is not None and self._voice not in {v.id for v in first.voices}:
            await websocket.close()
            self._websocket = None
            await self.push_error(
                error_msg=f"voxwire: no voice {self._voice!r} on the server", force_treat_as_permanent=True
            )
            return
        self._websocket = websocket
        self._hello = first
        self._streams.clear()
        logger.debug(f"{self}: connected to {first.server} at {self._url}")
        await self._call_event_handler("on_connected")

    async def _disconnect_websocket(self) -> None:
        try:
            await self.stop_all_metrics()
            if self._websocket:
                await self._websocket.close()
        finally:
            self._websocket = None
            self._streams.clear()
            await self._call_event_handler("on_disconnected")

    async def _send(self, frame: Start | Text | Cancel) -> None:
        if self._websocket is None:
            raise ConnectionError("voxwire: not connected")
        await self._websocket.send(encode(frame))

    # Streams

    @property
    def _words_supported(self) -> bool:
        return bool(self._hello and self._hello.options and self._hello.options.words)

    async def _open_stream(self, context_id: str) -> _Stream:
        stream = _Stream(rate=self.sample_rate)
        await self._send(
            Start(
                stream=context_id,
                voice=self._voice,
                sample_rate=self.sample_rate,
                speed=self._speed,
                words=self._words_supported,
                pace=self._pace,
                max_buffer_delay_ms=self._max_buffer_delay_ms,
                first_chunk_ms=self._first_chunk_ms,
            )
        )
        self._streams[context_id] = stream
        logger.debug(f"{self}: stream {context_id} started at {stream.rate} Hz")
        return stream

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Send `text` to the context's stream, starting the stream on its first text."""
        try:
            if not self._websocket or self._websocket.state is State.CLOSED:
                await self._connect()
            stream = self._streams.get(context_id)
            if stream is None:
                stream = await self._open_stream(context_id)
                await self.start_tts_usage_metrics(text)
            if stream.final:
                logger.warning(f"{self}: stream {context_id} has ended its input; not speaking [{text}]")
            else:
                await self._send(Text(stream=context_id, text=text))
        except Exception as e:
            yield ErrorFrame(error=f"voxwire: {e}")
            yield TTSStoppedFrame(context_id=context_id)
            return
        yield None

    async def flush_audio(self, context_id: str | None = None) -> None:
        """End the context's input (`final`): voxwire speaks the rest and ends the stream with `done`."""
        flush_id = context_id or self.get_active_audio_context_id()
        stream = self._streams.get(flush_id) if flush_id else None
        if flush_id is None or stream is None or stream.final or not self._websocket:
            return
        stream.final = True
        await self._send(Text(stream=flush_id, text="", final=True))

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        """Cancel the context's stream, with the playhead so that `done.heard` is what was heard."""
        await self.stop_all_metrics()
        stream = self._streams.get(context_id)
        if stream is not None and not stream.cancelled and self._websocket:
            stream.cancelled = True
            played = stream.played(time.monotonic())
            logger.debug(f"{self}: cancel stream {context_id} played={played}")
            await self._send(Cancel(stream=context_id, played=played))
        await super().on_audio_context_interrupted(context_id)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        """Push a frame on, counting each stream's audio sent downstream (its playhead estimate)."""
        if isinstance(frame, TTSAudioRawFrame) and frame.context_id in self._streams:
            stream = self._streams[frame.context_id]
            if stream.first_push is None:
                stream.first_push = time.monotonic()
            stream.pushed += len(frame.audio) // 2
        await super().push_frame(frame, direction)

    # Receiving

    async def _receive_messages(self) -> None:
        if self._websocket is None:
            return
        async for message in self._websocket:
            try:
                frame = decode_server(message)
            except ProtocolError as e:
                await self.push_error(error_msg=f"voxwire: a frame from the server did not decode: {e}")
                continue
            if isinstance(frame, Chunk):
                await self._on_chunk(frame)
            elif isinstance(frame, Done):
                await self._on_done(frame)
            elif isinstance(frame, Error):
                await self.push_error(error_msg=f"voxwire error {frame.code}: {frame.message}")
            elif isinstance(frame, Draining):
                # The server closes the connection (1001) once its streams are done; the next text then
                # reconnects (run_tts), to this server's successor behind the same URL.
                logger.info(f"{self}: the server is draining")

    async def _on_chunk(self, chunk: Chunk) -> None:
        if not self.audio_context_available(chunk.stream):
            return  # a context interrupted or ended: its audio in flight is dropped
        await self.append_to_audio_context(
            chunk.stream,
            TTSAudioRawFrame(
                audio=chunk.audio, sample_rate=chunk.sample_rate, num_channels=1, context_id=chunk.stream
            ),
        )
        if chunk.words:
            await self.add_word_timestamps(
                [(word, start / chunk.sample_rate) for word, start, _end in chunk.words], chunk.stream
            )

    async def _on_done(self, done: Done) -> None:
        stream = self._streams.pop(done.stream, None)
        logger.debug(
            f"{self}: stream {done.stream} done: {done.reason}, {done.chunks} chunks, {done.samples} samples"
            + (f", heard {done.heard!r}" if done.heard is not None else "")
        )
        if stream is not None and self.audio_context_available(done.stream):
            await self.stop_ttfb_metrics()
            await self.append_to_audio_context(done.stream, TTSStoppedFrame(context_id=done.stream))
            await self.remove_audio_context(done.stream)
        await self._call_event_handler("on_stream_done", done)
