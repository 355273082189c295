"""The session page v2, parsed as a person reads it: retries and errors, background results, long tool results,
ids with `/`, the timeline, and a live refresh that sends only what is new."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from ccbridge.captured import CapturedExchange
from tests.fixtures import fixture_files
from tests.support.builders import Conversation, text, tool_result, tool_use, user, write
from tests.unit.viewer.test_pages import session_id_of, soup


def failed(item: CapturedExchange, status: int, message: str) -> CapturedExchange:
    body = json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": message}}).encode()
    return dataclasses.replace(item, status_code=status, response_chunks=[body], chunk_times=[item.started_at + 0.1],
                               response_headers=[("content-type", "application/json")])


def test_retries_are_one_turn_and_a_failed_turn_says_why(engine: Engine, client: TestClient) -> None:
    conv = Conversation("sess-retry", [1_790_000_000.0])
    first = [failed(conv.turn([user("hi")], [], status=429), 429, "Number of requests has exceeded your rate limit")]
    first += [failed(conv.turn([], [], status=429), 429, "still limited") for _ in range(5)]
    ok = conv.turn([], [text("hello MARKER-OK")])
    last = failed(conv.turn([user("again")], [], status=529), 529, "Overloaded MARKER-529")
    write(engine, [*first, ok, last])
    page = soup(client.get("/sessions/sess-retry"))
    turns = page.select("#transcript > section.thread > article.turn")
    assert len(turns) == 2, "six failed attempts and the answer are one turn"
    assert "7 attempts" in turns[0].select_one(".stats .attempts").get_text()
    assert "MARKER-OK" in turns[0].get_text() and not turns[0].select_one(".turn-error")
    error = turns[1].select_one(".turn-error").get_text()
    assert "529" in error and "Overloaded MARKER-529" in error
    assert "no answer recorded" not in turns[1].get_text()
    anchors = {a["id"] for a in turns[0].select("a.anchor")} | {turns[0]["id"]}
    assert len(anchors) == 7, "every attempt's permalink lands on the turn"


def test_turn_shows_context_time_and_a_visible_permalink(fixture_client: TestClient) -> None:
    path = next(p for p in fixture_files() if p.stem == "hello" and p.parent.name == "2.1.329")
    turn = soup(fixture_client.get(f"/sessions/{session_id_of(path)}")).select_one("article.turn")
    assert turn.select_one("a.permalink")["href"] == f"#{turn['id']}"
    time = turn.select_one(".stats time")
    assert time["datetime"].startswith("2026-") and "UTC" in time["title"]
    stats = {s["title"]: int(s.get_text().split()[-1].replace(",", "")) for s in turn.select(".stats span[title]")
             if s.get_text().split()[-1].replace(",", "").isdigit()}
    context = stats["input tokens (not cached)"] + stats["cache read tokens"] + stats["cache write tokens"]
    assert context > 13_000 and f"context {context:,}" in turn.select_one(".stats .context").get_text()


def test_background_result_is_labelled_and_linked_to_its_run(fixture_client: TestClient) -> None:
    path = next(p for p in fixture_files() if p.stem == "subagent" and p.parent.name == "2.1.329")
    page = soup(fixture_client.get(f"/sessions/{session_id_of(path)}"))
    note = page.select_one("#transcript .task-note")
    assert note is not None
    link = note.select_one("a")
    assert link.get_text().startswith("Result of subagent run code-reviewer")
    run = page.find(id=link["href"].removeprefix("#"))
    assert run is not None and "subagent" in run["class"]
    assert "MOCK-SUBAGENT-ANSWER" in note.get_text()
    assert page.select_one("#transcript").get_text().count("MARKER-PARENT-PROMPT-91c2") == 1, "the prompt, once"


def test_a_long_tool_result_is_sent_in_part_and_the_rest_on_demand(engine: Engine, client: TestClient) -> None:
    conv = Conversation("sess-long", [1_790_000_000.0])
    big = "".join(f"line {i:06d} of a long output\n" for i in range(70_000))  # about 2 MB
    write(engine, [conv.turn([user("read it")], [tool_use("t1", "Bash", {"command": "cat big.log"})]),
                   conv.turn([tool_result("t1", big + "END-MARKER")], [text("Read.")])])
    response = client.get("/sessions/sess-long")
    assert len(response.content) < 200_000
    button = soup(response).select_one("details.result .more button")
    assert "show all (2.0 MB)" in button.get_text()
    rest = client.get(button["hx-get"])
    assert rest.status_code == 200 and "END-MARKER" in rest.text and len(rest.content) > 2_000_000


def test_session_ids_with_a_slash_work(engine: Engine, client: TestClient) -> None:
    for sid in ("team/alpha", "x/timeline"):
        conv = Conversation(sid, [1_790_000_000.0])
        write(engine, [conv.turn([user(f"hello from {sid}")], [text("hi")])])
    assert "hello from team/alpha" in client.get("/sessions/team%2Falpha").text
    assert "hello from team/alpha" in client.get("/sessions/team/alpha").text
    assert "hello from x/timeline" in client.get("/sessions/x%2Ftimeline").text
    timeline = soup(client.get("/sessions/team%2Falpha/timeline"))
    assert timeline.select("svg.timeline a.bar")
    assert client.get("/sessions/team%2Fnope").status_code == 404


def test_live_refresh_sends_only_the_new_turn(engine: Engine, client: TestClient) -> None:
    conv = Conversation("sess-live", [1_790_000_000.0])
    items = [conv.turn([user("start")], [tool_use("t0", "Bash", {"command": "ls"})])]
    for i in range(1, 20):
        items.append(conv.turn([tool_result(f"t{i - 1}", "output " * 200)],
                               [text(f"step {i}"), tool_use(f"t{i}", "Bash", {"command": f"echo {i}"})]))
    write(engine, items)
    page = soup(client.get("/sessions/sess-live"))
    live = page.select_one("#live")
    assert client.get(live["hx-get"]).status_code == 204
    write(engine, [conv.turn([tool_result("t19", "last output")], [text("MARKER-NEW-TURN")])])
    response = client.get(live["hx-get"])
    fragment = BeautifulSoup(response.text, "html.parser")
    assert 'id="transcript"' not in response.text, "not the whole transcript"
    (turn,) = fragment.select("article.turn")
    assert "MARKER-NEW-TURN" in turn.get_text()
    holder = turn.find_parent(attrs={"hx-swap-oob": True})
    assert holder["hx-swap-oob"] == "beforeend:#thread-t1"
    assert fragment.select_one("#live")["hx-get"] != live["hx-get"], "the next poll asks from the new state"
    assert len(response.content) < len(client.get("/sessions/sess-live").content) / 10


def test_timeline_has_a_lane_per_run_and_bars_link_to_turns(fixture_client: TestClient) -> None:
    path = next(p for p in fixture_files() if p.stem == "subagent-sync" and p.parent.name == "2.1.329")
    sid = session_id_of(path)
    page = soup(fixture_client.get(f"/sessions/{sid}/timeline"))
    lanes = page.select("svg.timeline g.lane")
    assert len(lanes) == 2 and "code-reviewer" in lanes[1].get_text()
    session = soup(fixture_client.get(f"/sessions/{sid}"))
    for bar in page.select("svg.timeline a.bar"):
        url, anchor = bar["href"].split("#")
        assert url == f"/sessions/{sid}" and session.find(id=anchor) is not None
    assert page.select_one("nav.tabs a[aria-current=page]").get_text() == "Timeline"


def test_hostile_labels_in_the_timeline_are_text(engine: Engine, client: TestClient, tmp_path: Path) -> None:
    evil = "<script>window.__xss=1</script>"
    main = Conversation("sess-evil", [1_790_000_000.0])
    write(engine, [main.turn([user("go")], [tool_use("c1", "Agent", {"description": evil, "prompt": "p",
                                                                     "subagent_type": evil})])])
    sub = Conversation("sess-evil", [1_790_000_001.0], agent_id="a" + "1" * 16)
    write(engine, [sub.turn([user("p")], [text("ok")])])
    response = client.get("/sessions/sess-evil/timeline")
    assert "<script>window" not in response.text and not soup(response).select("svg script")
