"""Helpers for the browser tests: a headless Chromium, the demo page in tap mode, and what it played.

The demo page at ``/?tap=1`` records the PCM it received for every stream and every sample its player
rendered (``web/voxwire-worklet.js``'s tap), each on the AudioContext's frame clock. The streams ask for the
context's own sample rate, so what was played can be compared exactly, sample for sample, with what was
received: a PCM16 value ``v`` is played as the float32 ``v / 32768``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WAIT_MS = 60_000

# Float32Array or Int16Array -> base64 of its bytes (typed arrays do not cross page.evaluate as such).
_TO_BASE64 = """(array) => {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium that may play audio without a user gesture; skips when none is installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class DemoPage:
    """The demo page in tap mode, with the page's own JavaScript errors collected."""

    def __init__(self, browser: Browser, base_url: str, width: int = 1280, height: int = 800) -> None:
        self.page: Page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(f"{base_url}/?tap=1")
        self.wait_connected(1)

    def close(self) -> None:
        self.page.close()
        assert self.errors == [], f"JavaScript errors on the page: {self.errors}"

    def wait(self, expression: str, arg: object = None) -> None:
        self.page.wait_for_function(expression, arg=arg, timeout=WAIT_MS)

    def wait_connected(self, connections: int) -> None:
        self.wait("(n) => voxwireDemo.client !== null && voxwireDemo.connections === n", connections)

    @property
    def sample_rate(self) -> int:
        return int(self.page.evaluate("voxwireDemo.client.audioContext.sampleRate"))

    def speak(self, text: str, *, button: str = "#speak") -> int:
        """Type ``text`` and press ``button``; returns the index of the stream it opened."""
        count = self.stream_count()
        self.page.fill("#text", text)
        self.page.click(button)
        self.wait("(n) => voxwireDemo.streams.length > n", count)
        return count

    def stream_count(self) -> int:
        return int(self.page.evaluate("voxwireDemo.streams.length"))

    def wait_ended(self, index: int) -> None:
        """Wait until the stream has played out (or was cancelled) and its ``done`` has come."""
        self.wait("(i) => voxwireDemo.streams[i].ended !== null && voxwireDemo.streams[i].done", index)

    def wait_tapped(self, frame: int) -> None:
        """Wait until the tap has recorded every frame before ``frame``."""
        self.wait("(f) => voxwireDemo.client.tap.endFrame >= f", frame)

    def record(self, index: int) -> StreamRecord:
        """What the page received for stream ``index`` and when its player started, stalled and stopped."""
        info = self.page.evaluate(
            """(i) => {
              const r = voxwireDemo.streams[i];
              return {id: r.id, done: r.done, ended: r.ended, firstaudio: r.firstaudio, errors: r.errors,
                      playback: r.stream.playback, underruns: r.stream.underruns};
            }""",
            index,
        )
        encoded = self.page.evaluate(
            f"""(i) => {{
              const chunks = voxwireDemo.streams[i].pcm;
              const pcm = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
              let at = 0;
              for (const c of chunks) {{ pcm.set(c, at); at += c.length; }}
              return ({_TO_BASE64})(pcm);
            }}""",
            index,
        )
        pcm = np.frombuffer(base64.b64decode(encoded), dtype="<i2")
        return StreamRecord(pcm=pcm, **info)

    def tapped(self) -> Tapped:
        """Every sample the player rendered since the tap started."""
        tap = self.page.evaluate(
            f"() => {{ const tap = voxwireDemo.client.tap.read(); "
            f"return {{ ...tap, samples: ({_TO_BASE64})(tap.samples) }}; }}"
        )
        samples = np.frombuffer(base64.b64decode(tap["samples"]), dtype="<f4")
        return Tapped(tap["frame"], samples, [(begin, end) for begin, end in tap["gaps"]])


@dataclass
class Tapped:
    """What the tap recorded: ``samples[i]`` is context frame ``first + i``; ``gaps`` are frame ranges the
    context's clock skipped (never rendered, zeros here)."""

    first: int
    samples: np.ndarray
    gaps: list[tuple[int, int]]

    def between(self, begin: int, end: int | None = None) -> np.ndarray:
        """The samples of frames ``begin`` to ``end`` (to the last one recorded when None)."""
        assert begin >= self.first, f"frame {begin} is before the tap started ({self.first})"
        return self.samples[begin - self.first : None if end is None else end - self.first]


@dataclass
class StreamRecord:
    id: str
    pcm: np.ndarray
    done: dict | None
    ended: dict | None
    firstaudio: dict | None
    errors: list[dict]
    playback: list[dict]
    underruns: int

    def frame(self, event: str) -> int:
        frames = [entry["frame"] for entry in self.playback if entry["event"] == event]
        assert len(frames) == 1, f"expected one {event!r} in {self.playback}"
        return int(frames[0])

    def segments(self) -> list[tuple[int, int]]:
        """The frame ranges in which the player played this stream: from each start or resume to the next
        underrun, end or cancel."""
        segments: list[tuple[int, int]] = []
        begin: int | None = None
        for entry in self.playback:
            if entry["event"] in ("started", "resumed"):
                assert begin is None, f"started twice: {self.playback}"
                begin = entry["frame"]
            elif begin is not None:
                segments.append((begin, entry["frame"]))
                begin = None
            else:  # a stream that never started, or that ends while re-buffering after an underrun
                assert entry["event"] in ("ended", "cancelled"), f"{entry['event']} while not playing"
        assert begin is None, f"still playing: {self.playback}"
        return segments


def as_played(pcm: np.ndarray) -> np.ndarray:
    """PCM16 as the player plays it: float32 ``v / 32768``."""
    return pcm.astype(np.float32) / np.float32(32768)


FADE_S = 0.02
"""How long a cancelled stream fades out (web/voxwire.js FADE_MS)."""


def fade_gains(frames: int) -> np.ndarray:
    """The player's fade: sample k of ``frames`` scaled by (frames - k) / (frames + 1), then silence."""
    return (np.arange(frames, 0, -1) / (frames + 1)).astype(np.float32)


def assert_played_exactly(tap: Tapped, records: list[StreamRecord], rate: int | None = None) -> None:
    """Within each stream's play segments the tap holds its received PCM, in order, each sample once (the
    whole of it, unless the stream was cancelled); a stream cancelled while playing then fades: the next
    ``FADE_S`` of its PCM, scaled down linearly to zero (``rate``: the context's, needed for it);
    everywhere else the tap is silent."""
    silent = np.ones(len(tap.samples), dtype=bool)
    for record in records:
        played = []
        for begin, end in record.segments():
            assert end <= tap.first + len(tap.samples), f"segment {begin}..{end} not all tapped"
            skipped = [gap for gap in tap.gaps if gap[0] < end and begin < gap[1]]
            assert skipped == [], f"the context's clock skipped frames {skipped} while {record.id} played"
            played.append(tap.between(begin, end))
            silent[begin - tap.first : end - tap.first] = False
        played_all = np.concatenate(played) if played else np.zeros(0, np.float32)
        expected = as_played(record.pcm)
        if record.ended and record.ended["cancelled"]:
            expected = expected[: len(played_all)]
        assert len(played_all) == len(expected), (
            f"stream {record.id}: played {len(played_all)} samples, received {len(expected)}"
        )
        differ = np.flatnonzero(played_all != expected)
        assert differ.size == 0, f"stream {record.id}: first differing sample {differ[:1]} of {len(expected)}"
        segments = record.segments()
        if (
            record.ended
            and record.ended["cancelled"]
            and segments
            and segments[-1][1] == record.frame("cancelled")
        ):
            assert rate is not None, "a stream cancelled while playing fades: pass the context's rate"
            rest = as_played(record.pcm)[len(played_all) :]
            fade = min(round(FADE_S * rate), len(rest))
            begin = segments[-1][1]
            faded = tap.between(begin, begin + fade)
            np.testing.assert_allclose(faded, rest[:fade] * fade_gains(fade), atol=1e-6)
            silent[begin - tap.first : begin + fade - tap.first] = False
    loud = np.flatnonzero(tap.samples[silent] != 0)
    assert loud.size == 0, f"{loud.size} non-zero samples outside the streams' play segments"
