"""The demo page as a person sees it: screenshots at desktop and phone sizes, and a server that goes away."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.web_harness import ARTIFACTS, DemoPage, assert_played_exactly, chromium
from voxwire.server.process import ServerProcess

pytestmark = pytest.mark.browser

SENTENCE = "Hello! This is voxwire, speaking in your browser as the words are made."
PARAGRAPH = (
    "This reply is long on purpose, so that the server can go away while it is still speaking. "
    "It goes on for a while about nothing in particular, one sentence after another. "
    "A listener would have heard most of it by the time the connection dropped."
)
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize("size", sorted(SIZES))
def test_screenshot_while_speaking(browser: Browser, live_server: ServerProcess, size: str) -> None:
    width, height = SIZES[size]
    demo = DemoPage(browser, live_server.http_url, width, height)
    index = demo.speak(SENTENCE)
    demo.wait("(i) => voxwireDemo.streams[i].firstaudio !== null", index)
    demo.wait("() => parseFloat(document.getElementById('meter-fill').style.width) > 20")  # mid-word
    page = demo.page
    assert page.text_content("#status") == "Connected"
    voices = page.evaluate("voxwireDemo.client.voices.map((voice) => voice.id)")
    assert page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)") == voices
    assert voices != []
    assert page.text_content("#ttfa") != "–"
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    for button in ("#speak", "#speak-llm", "#interrupt"):
        box = page.locator(button).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"web-{size}.png", full_page=True)
    demo.wait_ended(index)
    demo.close()


def test_server_going_away_shows_an_error_and_reconnect_works(browser: Browser) -> None:
    server = ServerProcess().start()
    try:
        demo = DemoPage(browser, server.http_url)
        index = demo.speak(PARAGRAPH)
        demo.wait("(i) => voxwireDemo.streams[i].firstaudio !== null", index)
        server.kill()  # gone mid-stream, without a goodbye
        demo.wait("() => voxwireDemo.client === null && !document.getElementById('banner').hidden")
        assert re.search("Connection lost|Could not connect", demo.page.text_content("#banner-text") or "")
        assert demo.page.text_content("#status") == "Disconnected"
        assert demo.page.is_visible("#reconnect")
        assert demo.page.is_disabled("#speak")
        lost = demo.record(index)
        assert [error["code"] for error in lost.errors] == ["disconnected"]
        assert lost.done is not None and lost.done["reason"] == "error"

        server = ServerProcess(port=server.port).start()
        # A click, not page.click: the page's own retry may have reconnected and hidden the button already.
        demo.page.evaluate("document.getElementById('reconnect').click()")
        demo.wait_connected(2)
        assert demo.page.is_hidden("#banner")
        assert demo.page.text_content("#status") == "Connected"
        after = demo.speak(SENTENCE)
        demo.wait_ended(after)
        record = demo.record(after)
        assert record.done is not None and record.done["reason"] == "complete"
        demo.wait_tapped(record.frame("ended") + 128)
        assert_played_exactly(demo.tapped(), [record])
        demo.close()
    finally:
        server.stop()
