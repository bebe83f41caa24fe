"""The asyncio side of one worker process: its connections, their stream slots, and the streams they speak.

A connection runs its slots side by side; a slot speaks one reply after another (`start`, then the reply's
tokens on a schedule of `token_rate` per second, the last `final`), and waits for each stream's `done`
before the next. A reader task decodes every message and hands it to the connection's `ConnectionTracker`.

Every wait is bounded: a connection attempt by `connect_timeout_s`, a stream by `stream_timeout_s` of
silence and by the run's hard end (`duration_s + grace_s`). A lost connection is counted and reopened
(with jittered backoff) until the load ends; so is a failed attempt.

Retries, as protocol v1 asks of clients: after the server's `draining` notice a connection starts nothing
more; once its streams in flight have ended it closes and a new connection takes over at once (behind a
load balancer, on another server). A reply whose `start` was refused with `shutting_down`, or went
unanswered until the drain's close, is spoken again on the new connection; after an `overloaded` refusal
the slot waits a jittered backoff before it speaks again.
"""

import asyncio
import contextlib
import enum
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from voxwire.protocol import (
    Cancel,
    ClientFrame,
    Draining,
    ErrorCode,
    ProtocolError,
    Start,
    Text,
    decode_server,
    encode,
)

from .config import ConnectionPlan, LoadConfig, TokenPlacement
from .progress import ProgressSnapshot
from .results import Outcome, RunResult, StreamRecord
from .tokens import split_tokens
from .tracker import ERROR_SETTLE_S, ConnectionTracker, StreamState

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest message the client accepts; chunks are far smaller, this only bounds a runaway server."""
CLOSE_TIMEOUT_S = 2.0
SPEECH_CHARS_PER_S = 15.0
"""A rough speaking rate, to guess when a stream's audio ends (for the moment of a barge-in)."""
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
"""Waits before reopening a lost connection, each scaled by a random factor in `JITTER` (a thundering
herd of clients would otherwise come back in step)."""
OVERLOADED_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
"""A slot's waits after consecutive `overloaded` refusals (jittered too)."""
JITTER = (0.5, 1.5)


class SessionEnd(enum.Enum):
    """How a connection's session ended."""

    DONE = "done"
    """The load is over."""
    LOST = "lost"
    """The connection failed or the server closed it: reopen with backoff."""
    DRAINED = "drained"
    """The server sent `draining`; the streams in flight have ended: reopen at once (elsewhere)."""


@dataclass
class RunContext:
    """The state of one process's run; times are seconds since `t0` on the event loop's clock."""

    config: LoadConfig
    t0: float
    result: RunResult = field(default_factory=RunResult)
    active: int = 0
    underruns: int = 0
    _reported: int = field(default=0, init=False)

    @classmethod
    def starting_now(cls, config: LoadConfig) -> "RunContext":
        return cls(config, t0=asyncio.get_running_loop().time())

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    @property
    def load_end_s(self) -> float:
        """No stream starts after this."""
        return self.config.duration_s

    @property
    def hard_end_s(self) -> float:
        """Streams still open now are given up."""
        return self.config.duration_s + self.config.grace_s

    def add_record(self, record: StreamRecord) -> None:
        self.result.records.append(record)
        self.underruns += record.underruns

    def snapshot(self) -> ProgressSnapshot:
        """Counts so far, with the first-audio times recorded since the previous snapshot."""
        records = self.result.records
        new = tuple(r.first_audio_ms for r in records[self._reported :] if r.first_audio_ms is not None)
        self._reported = len(records)
        return ProgressSnapshot(
            elapsed_s=self.now(),
            active=self.active,
            finished=len(records),
            errors=self.result.errors.total(),
            underruns=self.underruns,
            new_first_audio_ms=new,
        )


@dataclass
class Slot:
    """One of the run's concurrent stream slots; its random draws are seeded by the run's seed and index."""

    index: int
    start_s: float
    rng: random.Random
    spoken: int = 0
    pending: str | None = None
    """A reply to speak again: its `start` was refused or unanswered in a drain."""
    refusals: int = 0
    """Consecutive `overloaded` refusals."""

    @classmethod
    def seeded(cls, index: int, start_s: float, seed: int) -> "Slot":
        return cls(index, start_s, random.Random(f"{seed}/{index}"))


def _jittered(delay_s: float) -> float:
    return delay_s * random.uniform(*JITTER)


async def run_connection(ctx: RunContext, plan: ConnectionPlan) -> None:
    """Open the planned connection at its time and keep it (re)opened until the load ends."""
    config = ctx.config
    slots = [
        Slot.seeded(index, start, config.seed)
        for index, start in zip(plan.slots, plan.slot_starts_s, strict=True)
    ]
    await _sleep_until(ctx, plan.start_s)
    delays = _reconnect_delays()
    while ctx.now() < ctx.load_end_s:
        ws = await _open(ctx)
        if ws is not None:
            ctx.result.connections_opened += 1
            session = ConnectionSession(ctx, plan.index, ws, slots)
            try:
                end = await session.run()
            finally:
                await ws.close()
            if end is SessionEnd.DONE:
                return
            if end is SessionEnd.DRAINED:
                delays = _reconnect_delays()
                continue
            if session.streams_completed:
                delays = _reconnect_delays()
        await _sleep_until(ctx, min(ctx.now() + _jittered(next(delays)), ctx.load_end_s))


def _reconnect_delays() -> Iterator[float]:
    yield from RECONNECT_DELAYS_S
    while True:
        yield RECONNECT_DELAYS_S[-1]


async def _open(ctx: RunContext) -> ClientConnection | None:
    """A new connection to the configured URL (and nowhere else: no proxy), or None, counted, on failure."""
    config = ctx.config
    url, headers = config.url, {}
    if config.token is not None:
        if config.token_placement == TokenPlacement.QUERY:
            url = _with_token_query(url, config.token)
        else:
            headers["Authorization"] = f"Bearer {config.token}"
    try:
        return await connect(
            url,
            additional_headers=headers,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            proxy=None,
            open_timeout=config.connect_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
        )
    except InvalidStatus as error:
        code = f"client:http_{error.response.status_code}"
    except InvalidHandshake:
        code = "client:handshake_failed"
    except TimeoutError:
        code = "client:connect_timeout"
    except OSError:
        code = "client:connect_failed"
    ctx.result.errors[code] += 1
    return None


def _with_token_query(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, (parts.query, urlencode({"token": token}))))
    return urlunsplit(parts._replace(query=query))


async def _sleep_until(ctx: RunContext, at_s: float) -> None:
    await asyncio.sleep(max(0.0, at_s - ctx.now()))


async def _wait_event(event: asyncio.Event, timeout_s: float) -> None:
    """Wait until `event` is set or `timeout_s` has passed, whichever comes first."""
    if timeout_s <= 0:
        return
    with contextlib.suppress(TimeoutError):  # the caller checks its own deadlines after waking
        async with asyncio.timeout(timeout_s):
            await event.wait()


class ConnectionSession:
    """One open WebSocket: its reader, and its slots speaking until the load ends."""

    def __init__(self, ctx: RunContext, index: int, ws: ClientConnection, slots: list[Slot]) -> None:
        self._ctx = ctx
        self._ws = ws
        self._slots = slots
        self._tracker = ConnectionTracker(
            index,
            jitter_s=ctx.config.jitter_ms / 1000,
            errors=ctx.result.errors,
            violations=ctx.result.violations,
        )
        self._wakers: dict[str, asyncio.Event] = {}
        self._closing = False
        self._lost = False
        self.streams_completed = 0

    async def run(self) -> SessionEnd:
        """Speak on this connection until the load ends, the connection is lost, or the server drains."""
        if not await self._receive_hello():
            return SessionEnd.LOST
        reader = asyncio.create_task(self._read(), name=f"loadtest-reader-{self._tracker.connection}")
        try:
            await asyncio.gather(*(self._run_slot(slot) for slot in self._slots))
        finally:
            self._closing = True
            await self._ws.close()
            await reader
        if self._tracker.draining_at is not None:
            return SessionEnd.DRAINED
        return SessionEnd.LOST if self._lost else SessionEnd.DONE

    async def _receive_hello(self) -> bool:
        try:
            async with asyncio.timeout(self._ctx.config.connect_timeout_s):
                message = await self._ws.recv()
        except TimeoutError:
            self._ctx.result.errors["client:no_hello"] += 1
            return False
        except ConnectionClosed:
            self._count_close()
            return False
        self._handle(message)
        hello = self._tracker.hello
        if hello is not None and self._ctx.result.server is None:
            self._ctx.result.server = hello.server
        return True

    async def _read(self) -> None:
        while True:
            try:
                message = await self._ws.recv()
            except ConnectionClosed:
                break  # how it closed is counted below
            self._handle(message)
        server_closed = not self._closing
        if server_closed:
            self._lost = True
            self._count_close()
        for state in self._tracker.lose_all(server_closed=server_closed, close_code=self._ws.close_code):
            self._wake(state)

    def _count_close(self) -> None:
        code = self._ws.close_code if self._ws.close_code is not None else 1006
        self._ctx.result.errors[f"client:closed_{code}"] += 1

    def _handle(self, message: bytes | str) -> None:
        at = self._ctx.now()
        try:
            frame = decode_server(message)
        except ProtocolError as error:
            self._tracker.undecodable(error)
            return
        state = self._tracker.receive(frame, at)
        if state is not None:
            self._wake(state)
        if isinstance(frame, Draining):
            self._ctx.result.errors["client:draining_notice"] += 1

    def _wake(self, state: StreamState) -> None:
        waker = self._wakers.get(state.stream)
        if waker is not None:
            waker.set()

    async def _send(self, frame: ClientFrame) -> bool:
        """Send `frame`; False when the connection is gone (the reader counts how it closed)."""
        try:
            await self._ws.send(encode(frame))
        except ConnectionClosed:
            return False
        return True

    async def _run_slot(self, slot: Slot) -> None:
        ctx = self._ctx
        await _sleep_until(ctx, slot.start_s)
        while not self._lost and self._tracker.draining_at is None and ctx.now() < ctx.load_end_s:
            record = await self._speak(slot)
            ctx.add_record(record)
            if record.outcome == Outcome.COMPLETE:
                self.streams_completed += 1
            if ErrorCode.OVERLOADED in record.errors:
                delay = OVERLOADED_DELAYS_S[min(slot.refusals, len(OVERLOADED_DELAYS_S) - 1)]
                slot.refusals += 1
                await _sleep_until(ctx, min(ctx.now() + _jittered(delay), ctx.load_end_s))
            else:
                slot.refusals = 0

    async def _speak(self, slot: Slot) -> StreamRecord:
        """One reply on a new stream, from `start` to `done` (or until given up)."""
        ctx, config, rng = self._ctx, self._ctx.config, slot.rng
        text = slot.pending if slot.pending is not None else rng.choice(config.texts)
        slot.pending = None
        tokens = split_tokens(text, rng)
        cancel_fraction, cancel_draw = rng.random(), rng.random()
        stream = f"{slot.index}-{slot.spoken}"
        slot.spoken += 1
        state = self._tracker.open(
            stream, slot=slot.index, text_chars=len(text), tokens=len(tokens), at=ctx.now(), text=text
        )
        waker = self._wakers[stream] = asyncio.Event()
        ctx.active += 1
        try:
            async with asyncio.timeout(ctx.hard_end_s - ctx.now()):
                give_up = await self._drive(
                    state, tokens, waker, cancel_fraction if cancel_draw < config.cancel_rate else None
                )
        except TimeoutError:
            give_up = "client:unfinished"
        finally:
            ctx.active -= 1
            del self._wakers[stream]
        record = self._tracker.close(state, give_up=give_up)
        if record.outcome == Outcome.RETRIED or ErrorCode.OVERLOADED in record.errors:
            slot.pending = text
        return record

    async def _drive(
        self, state: StreamState, tokens: list[str], waker: asyncio.Event, cancel_fraction: float | None
    ) -> str | None:
        """Send the stream's frames on schedule and wait for its end; returns why it was given up, if it was.

        The first token goes right after `start`, token k at `k / token_rate` seconds after it. A barge-in
        `cancel` goes at `cancel_fraction` of the way from the first token to the expected end of the
        stream: the later of its last token and its text's length at `SPEECH_CHARS_PER_S`.
        """
        ctx, config = self._ctx, self._ctx.config
        connected = await self._send(
            Start(
                state.stream, voice=config.voice, sample_rate=config.sample_rate, pace=config.pace, words=True
            )
        )
        interval = 1 / config.token_rate
        first_at = ctx.now()
        cancel_at = math.inf
        if cancel_fraction is not None:
            expected_s = max((len(tokens) - 1) * interval, state.text_chars / SPEECH_CHARS_PER_S)
            cancel_at = first_at + cancel_fraction * expected_s
        sent = 0
        while not state.finished:
            now = ctx.now()
            if state.error_at is not None and (state.retry or now >= state.error_at + ERROR_SETTLE_S):
                return None  # a refused start: the error frame is on the record
            if now >= state.last_activity + config.stream_timeout_s:
                return "client:stream_timeout"
            feeding = connected and not state.input_over and sent < len(tokens)
            token_at = first_at + sent * interval if feeding else math.inf
            cancelling = connected and state.cancel_sent_at is None and state.error_at is None
            cancel_due = cancel_at if cancelling else math.inf
            if min(token_at, cancel_due) <= now:
                if cancel_due <= token_at:
                    self._tracker.cancel_sent(state, now)
                    connected = await self._send(Cancel(state.stream))
                else:
                    self._tracker.text_sent(state, now, len(tokens[sent]))
                    final = sent == len(tokens) - 1
                    connected = await self._send(Text(state.stream, tokens[sent], final=final))
                    sent += 1
                continue
            wake_at = min(token_at, cancel_due, state.last_activity + config.stream_timeout_s)
            if state.error_at is not None:
                wake_at = min(wake_at, state.error_at + ERROR_SETTLE_S)
            waker.clear()
            await _wait_event(waker, wake_at - now)
        return None
