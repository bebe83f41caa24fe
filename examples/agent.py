"""An interruptible voice agent in one file: a scripted "LLM" streams its reply token by token into voxwire,
the user barges in (Enter, or a timer), and the agent truncates its history to what the user heard.

    voxwire serve &                                  # in another terminal
    python examples/agent.py                         # press Enter to interrupt
    python examples/agent.py --interrupt-after 2.5   # or interrupt by timer

No audio device is needed: the agent plays the audio on a clock (as a speaker would, starting with the first
chunk) and tells the server its playhead when it cancels, so ``done.heard`` is what a listener heard.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator

import msgpack
from websockets.asyncio.client import ClientConnection, connect

REPLY = (
    "Sure, here is the plan for tomorrow. We leave at 7:40 from the north gate, and the bus takes about "
    "forty minutes. Bring water, a hat and something warm, since the wind picks up in the afternoon. Lunch "
    "is at the lake, and we should be back by five."
)
TOKENS_PER_S = 40.0
"""How fast the scripted LLM writes (a hosted model's pace)."""


async def llm_tokens(text: str, rng: random.Random) -> AsyncIterator[str]:
    """The reply as an LLM would stream it: word pieces with a leading space, at an uneven pace."""
    for index, word in enumerate(text.split(" ")):
        piece = word if index == 0 else " " + word
        await asyncio.sleep(rng.expovariate(TOKENS_PER_S))
        yield piece


class Playback:
    """A speaker's clock: plays what arrived, in real time, from the first chunk on."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.received = 0
        self.started: float | None = None

    def add(self, samples: int) -> None:
        self.started = self.started or time.monotonic()
        self.received += samples

    def playhead(self) -> int:
        if self.started is None:
            return 0
        return min(self.received, int((time.monotonic() - self.started) * self.rate))


async def send(ws: ClientConnection, frame: dict[str, object]) -> None:
    await ws.send(msgpack.packb(frame))


async def speak(ws: ClientConnection, stream: str, rng: random.Random) -> None:
    await send(ws, {"type": "start", "stream": stream, "words": True})
    async for token in llm_tokens(REPLY, rng):
        await send(ws, {"type": "text", "stream": stream, "text": token})
    await send(ws, {"type": "text", "stream": stream, "text": "", "final": True})


async def barge_in(after_s: float | None) -> None:
    """Wait for the user to interrupt: the timer, or else Enter on the keyboard (never, at end of input)."""
    if after_s is not None:
        await asyncio.sleep(after_s)
        return
    loop = asyncio.get_running_loop()
    pressed: asyncio.Future[None] = loop.create_future()
    if not sys.stdin.isatty():  # no keyboard (a pipe, /dev/null): nobody can interrupt
        await pressed

    def on_input() -> None:
        loop.remove_reader(sys.stdin.fileno())
        if sys.stdin.readline() and not pressed.done():
            pressed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_input)
    try:
        await pressed
    finally:
        loop.remove_reader(sys.stdin.fileno())


async def turn(url: str, interrupt_after: float | None, seed: int) -> list[dict[str, str]]:
    history = [{"role": "user", "content": "What's the plan for tomorrow?"}]
    async with connect(url, max_size=None) as ws:
        hello = msgpack.unpackb(await ws.recv())
        playback = Playback(hello["voices"][0]["sample_rate"])
        writer = asyncio.create_task(speak(ws, "reply", random.Random(seed)))
        interrupt = asyncio.create_task(barge_in(interrupt_after))
        print("agent: speaking (press Enter to interrupt)")
        done: dict[str, object] | None = None
        interrupted = False
        while done is None:
            receive = asyncio.create_task(ws.recv())
            waiting = {receive} if interrupted else {receive, interrupt}
            finished, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not interrupted and interrupt in finished:
                interrupted = True
                writer.cancel()  # the LLM stops too
                played = playback.playhead()
                print(f"user: (interrupts after {played / playback.rate:.2f} s of audio)")
                await send(ws, {"type": "cancel", "stream": "reply", "played": played})
            frame = msgpack.unpackb(await receive)
            if frame["type"] == "chunk":
                playback.add(len(frame["audio"]) // 2)
                for word, start, _ in frame.get("words", []):
                    print(f"  [{start / playback.rate:6.2f} s] {word}")
            elif frame["type"] == "done":
                done = frame
            elif frame["type"] == "error":
                print(f"server: {frame['code']}: {frame['message']}", file=sys.stderr)
        interrupt.cancel()
        await asyncio.gather(writer, interrupt, return_exceptions=True)
    if done["reason"] == "cancelled":
        heard = str(done.get("heard", ""))
        print(f"heard: {heard!r}")
        history.append({"role": "assistant", "content": heard + " —"})  # what the user actually heard
    else:
        history.append({"role": "assistant", "content": REPLY})
    return history


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8765/v1/ws")
    parser.add_argument("--interrupt-after", type=float, help="interrupt after this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    history = asyncio.run(turn(args.url, args.interrupt_after, args.seed))
    print("history:")
    for message in history:
        print(f"  {message['role']}: {message['content']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
