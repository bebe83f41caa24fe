"""The browser client against the real server: what the page plays is exactly what the server sent.

Each test drives the demo page (``web/index.html`` in tap mode) in headless Chromium and compares the samples
its player rendered, on the audio clock, with the PCM the page received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from playwright.sync_api import Browser

from tests.web_harness import (
    ARTIFACTS,
    FADE_S,
    DemoPage,
    StreamRecord,
    as_played,
    assert_played_exactly,
    chromium,
)
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.browser

SENTENCE = "The quick brown fox jumps over the lazy dog."
SECOND_SENTENCE = "Then it ran back home for dinner."
PARAGRAPH = (
    "Once upon a time, in a small village by the sea, there lived an old fisherman. "
    "Every morning he rowed out beyond the rocks and cast his nets into the cold grey water. "
    "Most days he caught little, but he always came home singing."
)
QUANTUM = 128
INTERRUPT_SILENT_WITHIN_S = 0.05


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def demo(browser: Browser, live_server: ServerProcess) -> Iterator[DemoPage]:
    page = DemoPage(browser, live_server.http_url)
    yield page
    page.close()


def test_a_sentence_plays_exactly_the_pcm_received(demo: DemoPage) -> None:
    index = demo.speak(SENTENCE)
    demo.wait_ended(index)
    record = demo.record(index)
    assert record.done is not None and record.done["reason"] == "complete"
    assert record.done["samples"] == len(record.pcm) > demo.sample_rate  # over a second of speech
    assert record.errors == []
    demo.wait_tapped(record.frame("ended") + QUANTUM)
    assert_played_exactly(demo.tapped(), [record])

    assert record.firstaudio is not None
    ARTIFACTS.mkdir(exist_ok=True)
    figures = {"text": SENTENCE, **record.firstaudio, "server_ttfa_ms": record.done.get("ttfa_ms")}
    (ARTIFACTS / "web-ttfa.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"browser time to first audio: {figures}")


def test_a_token_streamed_paragraph_plays_exactly_the_pcm_received(demo: DemoPage) -> None:
    index = demo.speak(PARAGRAPH, button="#speak-llm")
    demo.wait_ended(index)
    record = demo.record(index)
    assert record.done is not None and record.done["reason"] == "complete"
    assert record.done["samples"] == len(record.pcm) > 5 * demo.sample_rate
    demo.wait_tapped(record.frame("ended") + QUANTUM)
    # Any underrun shows as a counted silence between play segments; the segments hold every sample once.
    assert_played_exactly(demo.tapped(), [record])
    assert record.underruns == sum(entry["event"] == "underrun" for entry in record.playback)


def test_interrupt_silences_within_50_ms_and_the_next_reply_plays_cleanly(demo: DemoPage) -> None:
    rate = demo.sample_rate
    index = demo.speak(PARAGRAPH)
    demo.wait("(i) => voxwireDemo.streams[i].firstaudio !== null", index)
    started = demo.record(index).frame("started")
    demo.wait_tapped(started + rate // 2)

    demo.page.click("#interrupt")
    demo.wait_ended(index)
    record = demo.record(index)
    assert record.done is not None and record.done["reason"] == "cancelled"
    assert record.ended == {"cancelled": True}
    click = int(demo.page.evaluate("voxwireDemo.interruptFrame"))
    silent_from = click + round(INTERRUPT_SILENT_WITHIN_S * rate)
    demo.wait_tapped(silent_from + rate // 10)
    tap = demo.tapped()
    assert np.any(tap.between(started, click)), "nothing played before the click"
    assert not np.any(tap.between(silent_from)), "sound more than 50 ms after Interrupt"
    assert record.frame("cancelled") <= silent_from
    print(f"Interrupt: silent {(record.frame('cancelled') - click) / rate * 1000:.1f} ms after the click")

    after = demo.speak(SENTENCE)
    demo.wait_ended(after)
    next_record = demo.record(after)
    assert next_record.done is not None and next_record.done["reason"] == "complete"
    demo.wait_tapped(next_record.frame("ended") + QUANTUM)
    assert_played_exactly(demo.tapped(), [record, next_record], rate)


def test_two_queued_replies_play_back_to_back(demo: DemoPage) -> None:
    """The audio clock is held until both replies have arrived, so that the test does not depend on how fast
    this machine makes the second one: it checks the player's hand-over from one stream to the next."""
    # Headless Chromium's audio clock may jump once early in a context's life; let it run past that before
    # holding it, or the jump lands inside the playback that follows the resume.
    demo.wait("() => voxwireDemo.client.audioContext.currentTime > 0.5")
    first, second = demo.page.evaluate(
        """async ([one, two]) => {
          const first = voxwireDemo.openStream();
          const second = voxwireDemo.openStream();
          await voxwireDemo.client.audioContext.suspend();
          first.text(one, { final: true });
          second.text(two, { final: true });
          return [voxwireDemo.streams.length - 2, voxwireDemo.streams.length - 1];
        }""",
        [SENTENCE, SECOND_SENTENCE],
    )
    demo.wait("(indexes) => indexes.every((i) => voxwireDemo.streams[i].done !== null)", [first, second])
    demo.page.evaluate("voxwireDemo.client.audioContext.resume()")
    demo.wait_ended(second)
    records = [demo.record(first), demo.record(second)]
    assert [r.done["reason"] for r in records if r.done] == ["complete", "complete"]
    assert records[0].frame("ended") == records[1].frame("started"), "gap or overlap between the replies"
    assert records[0].underruns == records[1].underruns == 0
    demo.wait_tapped(records[1].frame("ended") + QUANTUM)
    assert_played_exactly(demo.tapped(), records)


def test_an_underrun_is_counted_and_playback_resumes(demo: DemoPage) -> None:
    index = demo.page.evaluate(
        """() => {
          voxwireDemo.openStream().text("Hello there.", { flush: true });
          return voxwireDemo.streams.length - 1;
        }"""
    )
    demo.wait("(i) => voxwireDemo.streams[i].stream.underruns >= 1", index)
    demo.page.evaluate("(i) => voxwireDemo.streams[i].stream.text(' Goodbye.', { final: true })", index)
    demo.wait_ended(index)
    record = demo.record(index)
    events = [entry["event"] for entry in record.playback]
    assert events[0] == "started" and events[-1] == "ended" and "resumed" in events
    assert events.count("underrun") == record.underruns == events.count("resumed") >= 1
    assert demo.page.text_content("#underruns") == str(record.underruns)
    demo.wait_tapped(record.frame("ended") + QUANTUM)
    assert_played_exactly(demo.tapped(), [record])


def test_a_refused_stream_shows_its_error_and_does_not_hold_up_the_next(demo: DemoPage) -> None:
    refused = demo.page.evaluate(
        """() => {
          voxwireDemo.openStream({ voice: "no-such-voice" }).text("Hello.", { final: true });
          return voxwireDemo.streams.length - 1;
        }"""
    )
    after = demo.speak(SECOND_SENTENCE)
    demo.wait_ended(after)
    demo.wait("(i) => voxwireDemo.streams[i].ended !== null", refused)
    record = demo.record(refused)
    assert record.errors[0]["code"] == "unknown_voice"
    assert record.done is None and record.ended == {"cancelled": False} and len(record.pcm) == 0
    assert demo.page.is_visible("#banner")
    assert "(unknown_voice)" in (demo.page.text_content("#banner-text") or "")
    played = demo.record(after)
    demo.wait_tapped(played.frame("ended") + QUANTUM)
    assert_played_exactly(demo.tapped(), [played])


def test_another_sample_rate_is_resampled_linearly_to_the_context_rate(demo: DemoPage) -> None:
    rate, source_rate = demo.sample_rate, 16000
    result = demo.page.evaluate(
        """([text, sampleRate]) => new Promise((resolve) => {
          const stream = voxwireDemo.client.stream({ sampleRate });
          const pcm = [];
          stream.addEventListener("chunk", (event) => pcm.push(...event.detail.pcm));
          stream.addEventListener("ended", () => resolve({ pcm, playback: stream.playback }));
          stream.text(text, { final: true });
        })""",
        [SECOND_SENTENCE, source_rate],
    )
    record = StreamRecord("resampled", np.zeros(0, np.int16), None, None, None, [], result["playback"], 0)
    segments = record.segments()
    demo.wait_tapped(segments[-1][1] + QUANTUM)
    tap = demo.tapped()
    played = np.concatenate([tap.between(begin, end) for begin, end in segments])
    source = as_played(np.array(result["pcm"], dtype=np.int16))
    step = source_rate / rate
    positions = np.arange(int((len(source) - 1) / step) + 1) * step
    assert abs(len(played) - len(positions)) <= 1
    count = min(len(played), len(positions))
    expected = np.interp(positions[:count], np.arange(len(source)), source)
    assert np.max(np.abs(played[:count] - expected)) < 1e-4


def test_interrupt_fades_out_and_the_heard_text_is_what_played(demo: DemoPage) -> None:
    rate = demo.sample_rate
    index = demo.speak(PARAGRAPH)
    demo.wait("(i) => voxwireDemo.streams[i].firstaudio !== null", index)
    started = demo.record(index).frame("started")
    demo.wait_tapped(started + 2 * rate)

    demo.page.click("#interrupt")
    demo.wait("() => voxwireDemo.heard !== null")
    record = demo.record(index)
    cancelled = record.frame("cancelled")
    fade = round(FADE_S * rate)
    demo.wait_tapped(cancelled + fade + QUANTUM)
    assert_played_exactly(demo.tapped(), [record], rate)  # exact up to the cancel, then the linear fade
    tail = np.abs(demo.tapped().between(cancelled, cancelled + fade))
    assert tail.max() > 0 and tail[-1] <= 1 / (fade + 1)  # it ends in a step no larger than the fade's

    words = demo.page.evaluate("(i) => voxwireDemo.streams[i].stream.words", index)
    played = sum(end - begin for begin, end in record.segments()) + fade  # what the listener heard
    ended = [word for word in words if word["end"] <= played]
    heard = demo.page.evaluate("() => voxwireDemo.heard")
    assert len(ended) >= 3  # two seconds of speech
    assert heard == [{"heard": PARAGRAPH[: ended[-1]["endChar"]], "heardChars": ended[-1]["endChar"]}]
    assert demo.page.inner_text("#heard").startswith("Heard:")


def test_captions_highlight_the_word_at_the_audio_clock(demo: DemoPage) -> None:
    index = demo.speak(PARAGRAPH)
    demo.wait("(i) => voxwireDemo.streams[i].firstaudio !== null", index)
    rate = demo.sample_rate
    started = demo.record(index).frame("started")
    checked = 0
    for seconds in (1.0, 2.5, 4.0):
        demo.wait_tapped(started + round(seconds * rate))
        # The highlighted word and the audio clock, read in one go (the captions follow it frame by frame).
        caption, frame = demo.page.evaluate(
            "() => [voxwireDemo.caption, Math.round(voxwireDemo.client.audioContext.currentTime"
            " * voxwireDemo.client.audioContext.sampleRate)]"
        )
        words = demo.page.evaluate("(i) => voxwireDemo.streams[i].stream.words", index)
        stream_rate = demo.page.evaluate("(i) => voxwireDemo.streams[i].stream.sampleRate ?? null", index)
        played = played_frames(demo.record(index).playback, frame) * (stream_rate or rate) / rate
        heard = [i for i, word in enumerate(words) if word["start"] <= played]
        assert caption["stream"] == demo.page.evaluate("(i) => voxwireDemo.streams[i].id", index)
        assert heard and abs(caption["index"] - heard[-1]) <= 1, (caption, heard[-1], played)
        shown = demo.page.inner_text("#captions").split()
        assert shown[: len(words)] == [word["text"] for word in words][: len(shown)]
        checked += 1
    assert checked == 3


def played_frames(playback: list[dict], frame: int) -> int:
    """Frames of the audio clock before ``frame`` in which the player played the stream (its playhead)."""
    total, begin = 0, None
    for entry in playback:
        if entry["frame"] > frame:
            break
        if entry["event"] in ("started", "resumed"):
            begin = entry["frame"]
        elif begin is not None:
            total, begin = total + entry["frame"] - begin, None
    return total + (frame - begin if begin is not None else 0)
