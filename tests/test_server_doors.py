"""Who may connect: tokens and the browser Origin (unit), and what the server says about it at start."""

from __future__ import annotations

import logging

import pytest

from voxwire.server.doors import origin_ok, token_ok
from voxwire.server.run import _log_doors
from voxwire.server.settings import Settings


def test_with_no_allow_list_only_the_servers_own_origin_may_connect() -> None:
    assert origin_ok("http://127.0.0.1:8765", "127.0.0.1:8765", ())
    assert origin_ok("https://Voice.Example.com", "voice.example.com", ())  # TLS proxy, default port
    assert not origin_ok("https://evil.example", "127.0.0.1:8765", ())
    assert not origin_ok("http://127.0.0.1:9999", "127.0.0.1:8765", ())  # another port is another origin
    assert not origin_ok("null", "127.0.0.1:8765", ())  # sandboxed frames and file:// pages
    assert not origin_ok("http://127.0.0.1:8765", None, ())


def test_programs_send_no_origin_and_pass() -> None:
    assert origin_ok(None, "127.0.0.1:8765", ())
    assert origin_ok(None, None, ("https://app.example",))


def test_an_allow_list_adds_origins_and_a_star_opens_it() -> None:
    allowed = ("https://app.example",)
    assert origin_ok("https://app.example", "voice.internal:8765", allowed)
    assert not origin_ok("https://other.example", "voice.internal:8765", allowed)
    assert origin_ok("https://anything.example", "voice.internal:8765", ("*",))


def test_tokens_from_the_query_or_a_bearer_header() -> None:
    tokens = ("s3cret", "other")
    assert token_ok({}, {}, ())
    assert token_ok({"token": "s3cret"}, {}, tokens)
    assert token_ok({}, {"authorization": "Bearer other"}, tokens)
    assert token_ok({}, {"authorization": "bearer other"}, tokens)
    assert not token_ok({}, {}, tokens)
    assert not token_ok({"token": ""}, {"authorization": "Bearer s3cret"}, tokens)  # the query is checked
    assert not token_ok({"token": "s3cre"}, {}, tokens)


@pytest.mark.parametrize(
    ("host", "tokens", "says", "warns"),
    [
        ("127.0.0.1", (), "auth is off", False),
        ("localhost", (), "auth is off", False),
        ("::1", (), "auth is off", False),
        ("0.0.0.0", (), "auth is off", True),
        ("192.0.2.7", (), "auth is off", True),
        ("0.0.0.0", ("t",), "auth is on", False),
    ],
)
def test_the_log_says_whether_auth_is_on_and_warns_when_anyone_can_connect(
    caplog: pytest.LogCaptureFixture, host: str, tokens: tuple[str, ...], says: str, warns: bool
) -> None:
    caplog.set_level(logging.INFO, logger="voxwire.server.run")
    _log_doors(Settings(host=host, tokens=tokens))
    assert says in caplog.text
    assert (
        any(
            r.levelno == logging.WARNING and "anyone on the network" in r.getMessage() for r in caplog.records
        )
        is warns
    )
    assert "t" not in [word for r in caplog.records for word in r.getMessage().split()]  # no token in the log
