"""The header view over captured pairs: any case finds a header, the first of repeated names wins."""

from __future__ import annotations

from ccbridge.headers import HeaderView


def test_any_case_finds_a_header() -> None:
    view = HeaderView([("Content-Type", "text/event-stream"), ("X-Claude-Code-Session-Id", "s1")])
    assert view.get("content-type") == "text/event-stream"
    assert view["x-claude-code-session-id"] == view.get("X-CLAUDE-CODE-SESSION-ID") == "s1"
    assert "CONTENT-TYPE" in view and "content-encoding" not in view


def test_the_first_of_repeated_names_wins() -> None:
    view = HeaderView([("set-cookie", "a=1"), ("Set-Cookie", "b=2")])
    assert view.get("set-cookie") == "a=1"
    assert len(view) == 1 and list(view) == ["set-cookie"]


def test_a_missing_header_gives_the_default() -> None:
    view = HeaderView([("accept", "*/*")])
    assert view.get("content-encoding") is None
    assert view.get("content-encoding", "identity") == "identity"
    assert HeaderView(None).get("accept") is None and len(HeaderView([])) == 0


def test_stored_rows_read_like_captured_pairs() -> None:
    # the database keeps headers as JSON lists of [name, value]
    assert HeaderView([["Request-Id", "req_1"]]).get("request-id") == "req_1"


def test_a_non_string_key_is_not_contained() -> None:
    assert 1 not in HeaderView([("1", "x")])
