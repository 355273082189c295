"""The HTML pages, parsed as a person reads them: sessions, a session's threads, a request, search, usage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.fixtures import captured_requests, fixture_files
from tests.support.builders import Conversation, text, tool_result, tool_use, user, write


def soup(response) -> BeautifulSoup:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


def session_id_of(path: Path) -> str:
    first = next(r for r in captured_requests(path) if r["method"] == "POST")
    return next(v for k, v in first["headers"] if k.lower() == "x-claude-code-session-id")


def test_sessions_page_lists_every_session(fixture_client: TestClient) -> None:
    page = soup(fixture_client.get("/"))
    rows = page.select("tr.session-row")
    assert {r["data-session"] for r in rows} == {session_id_of(p) for p in fixture_files()}
    row = next(r for r in rows if r["data-session"] == session_id_of(fixture_files()[0]))
    cells = [c.get_text(strip=True) for c in row.find_all("td")]
    assert "2.1.197" in cells and any(c.startswith("/home/dev/") for c in cells)
    assert any(c.startswith("$") for c in cells), "a cost is shown"
    limits = page.select("section.limits tr.limit")
    assert [tr.find("td").get_text() for tr in limits] == ["5-hour", "weekly"]
    assert "42%" in limits[0].get_text() and "allowed_warning" in limits[1].get_text()


@pytest.mark.parametrize("path", [p for p in fixture_files() if p.stem != "hello"],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_subagent_run_is_nested_under_the_agent_call(fixture_client: TestClient, path: Path) -> None:
    page = soup(fixture_client.get(f"/sessions/{session_id_of(path)}"))
    threads = page.select("#transcript > section.thread")
    assert len(threads) == 1, "one main thread"
    call = threads[0].select_one("div.tool-call")
    assert call.select_one(".tool-name").get_text() == "Agent"
    run = call.select_one("details.subagent")
    assert run is not None, "the run sits inside the Agent call"
    assert "code-reviewer" in run.summary.get_text()
    assert "MARKER-PARENT-PROMPT-91c2" in run.select_one(".run-prompt").get_text()
    assert "MOCK-SUBAGENT-ANSWER" in run.select_one(".run-answer").get_text()
    assert run.select("article.turn"), "the subagent's own turns are there to expand"
    assert "MOCK-FINAL-ANSWER" in threads[0].get_text()
    # per turn: model, tokens, cost, timing, status, and a link to the request page
    stats = threads[0].select_one("article.turn .stats").get_text(" ", strip=True)
    assert "claude-opus" in stats and "cache read 13,000" in stats and "200" in stats and "$" in stats


def test_hello_session_reads_like_a_chat(fixture_client: TestClient) -> None:
    path = next(p for p in fixture_files() if p.stem == "hello" and p.parent.name == "2.1.329")
    page = soup(fixture_client.get(f"/sessions/{session_id_of(path)}"))
    turn = page.select_one("article.turn")
    user_text = turn.select_one(".message.user").get_text()
    assert "say hello" in user_text
    assert turn.select_one(".message.user details.reminder"), "system reminders are collapsed"
    assert turn.select_one("details.message.system"), "the environment message is collapsed"
    assert "MOCK-HELLO" in turn.select_one(".message.assistant").get_text()
    assert page.select_one("details.system-prompt") and page.select_one("details.tools")
    assert page.select_one("section.limits tr.limit")


def test_request_page_shows_rebuilt_request_headers_events_and_diff(fixture_client: TestClient) -> None:
    path = next(p for p in fixture_files() if p.stem == "subagent-sync" and p.parent.name == "2.1.329")
    session = soup(fixture_client.get(f"/sessions/{session_id_of(path)}"))
    links = [a["href"] for a in session.select("#transcript > section.thread > article.turn .req-link")]
    page = soup(fixture_client.get(links[-1]))
    text_ = page.get_text()
    assert "MARKER-PARENT-PROMPT-91c2" in text_  # the rebuilt request
    assert "x-claude-code-session-id" in text_.lower() and "anthropic-ratelimit-unified-5h-utilization" in text_
    assert len(page.select("table.events tbody tr")) > 5
    added = [s.get_text() for s in page.select("pre.diff span.add")]
    assert any("tool_result" in line for line in added), "the diff shows the tool result this turn added"


def test_search_jumps_to_the_turn(fixture_client: TestClient) -> None:
    page = soup(fixture_client.get("/", params={"q": "MOCK-FINAL-ANSWER-AFTER-NOTIFICATION"}))
    hits = page.select("li.hit a")
    assert len(hits) == 1
    href = hits[0]["href"]
    session_url, anchor = href.split("#")
    target = soup(fixture_client.get(session_url)).find(id=anchor)
    assert target is not None and "MOCK-FINAL-ANSWER-AFTER-NOTIFICATION" in target.get_text()
    none = soup(fixture_client.get("/", params={"q": "no-such-word-anywhere-xyz"}))
    assert "No conversation contains" in none.get_text()


def test_search_finds_a_prompt_that_is_not_the_last_message(fixture_client: TestClient) -> None:
    hits = fixture_client.get("/api/search", params={"q": "say hello"}).json()["hits"]
    assert len(hits) == 2 and {h["where"] for h in hits} == {"request"}


def test_live_fragment_is_204_until_something_new(fixture_client: TestClient) -> None:
    path = fixture_files()[0]
    sid = session_id_of(path)
    page = soup(fixture_client.get(f"/sessions/{sid}"))
    known = page.select_one("#transcript")["data-known"]
    assert fixture_client.get(f"/sessions/{sid}/transcript", params={"known": known}).status_code == 204
    fresh = fixture_client.get(f"/sessions/{sid}/transcript", params={"known": "0-0"})
    assert fresh.status_code == 200 and 'id="transcript"' in fresh.text


def test_exports(fixture_client: TestClient) -> None:
    path = next(p for p in fixture_files() if p.stem == "subagent" and p.parent.name == "2.1.329")
    sid = session_id_of(path)
    md = fixture_client.get(f"/sessions/{sid}/export.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert f"# Claude Code session {sid}" in md.text and "> **Subagent code-reviewer" in md.text
    data = fixture_client.get(f"/sessions/{sid}/export.json").json()
    assert data == fixture_client.get(f"/api/sessions/{sid}").json()


def test_usage_page(fixture_client: TestClient) -> None:
    page = soup(fixture_client.get("/usage"))
    rows = page.select("table.usage tbody tr")
    assert any("claude-opus-5-5" in r.get_text() and "subagent" in r.get_text() for r in rows)


def test_unknown_session_and_request_are_404(fixture_client: TestClient) -> None:
    assert fixture_client.get("/sessions/nope").status_code == 404
    assert fixture_client.get("/requests/999999").status_code == 404


def test_tools_are_readable_and_hostile_text_is_inert(engine: Engine, client: TestClient) -> None:
    clock = [1_790_000_000.0]
    conv = Conversation("sess-tools", clock)
    evil = '<script>window.__xss=1</script><img src=x onerror="alert(1)"> [click](javascript:alert(1))'
    items = [
        conv.turn([user(f"Fix it {evil}")], [text(f"**Sure** [docs](https://example.com/d) {evil}"),
                                            tool_use("t1", "Bash", {"command": "rm -rf build && make"})]),
        conv.turn([tool_result("t1", f"built {evil}")], [tool_use("t2", "Edit", {
            "file_path": "/src/app.py", "old_string": "x = 1\ny = 2", "new_string": "x = 1\ny = 3"})]),
        conv.turn([tool_result("t2", "edited")], [tool_use("t3", "Read", {"file_path": "/src/app.py"})]),
        conv.turn([tool_result("t3", "x = 1")], [text("Done.")]),
    ]
    write(engine, items)
    response = client.get("/sessions/sess-tools")
    page = soup(response)
    calls = page.select("div.tool-call")
    assert [c.select_one(".tool-name").get_text() for c in calls] == ["Bash", "Edit", "Read"]
    assert calls[0].select_one("pre.command").get_text() == "$ rm -rf build && make"
    assert [s.get_text() for s in calls[1].select("pre.diff span.del")][-1] == "-y = 2"
    assert [s.get_text() for s in calls[1].select("pre.diff span.add")][-1] == "+y = 3"
    assert calls[2].select_one("p.path code").get_text() == "/src/app.py"
    assert "built" in calls[0].select_one("details.result").get_text()
    # the hostile text is there, as text
    assert page.find(string=re.compile(r"<script>window.__xss=1</script>"))
    assert not page.select("#transcript script") and not page.select("#transcript img")
    assert not [a for a in page.select("#transcript a") if "javascript" in (a.get("href") or "").lower()]
    assert not any(attr.startswith("on") for tag in page.select("#transcript *") for attr in tag.attrs)
    assert "<strong>Sure</strong>" in response.text, "markdown is rendered"
    link = page.select_one("#transcript a[href='https://example.com/d']")
    assert link is not None and link["rel"] == ["noopener", "noreferrer", "nofollow"]
    assert "script-src 'self'" in response.headers["content-security-policy"]
