"""The session page shows, under each turn of a shadowed subagent, the shadow route's answer to it, escaped."""

from __future__ import annotations

import time

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ccbridge.routes import Provider
from ccbridge.routing.shadow import shadow_record
from ccbridge.storage.models import Exchange
from tests.support.builders import Conversation, text, tool_result, tool_use, user, write

HOSTILE = "<script>alert('shadow')</script> SHADOW-TEXT-4e2"
PROVIDER = Provider(name="mock", base_url="http://127.0.0.1:9/v1", kind="openai-compatible", api_key="k")


def shadow_columns(content: list[dict[str, object]], error: str | None = None) -> dict[str, object]:
    return {"provider": "mock", "model": "gpt-mock", "api": "chat", "request": {"model": "gpt-mock"},
            "answer": {"role": "assistant", "content": content, "stop_reason": "end_turn"} if content else None,
            "raw_response": None, "input_tokens": 70, "output_tokens": 9, "cache_read_tokens": 0,
            "cost_usd": 0.0031, "ttfb_ms": 250.0, "duration_ms": 800.0, "error": error}


def test_each_turn_of_a_shadowed_subagent_shows_its_shadow_answer(engine: Engine, client: TestClient) -> None:
    clock = [time.time()]
    main = Conversation("s-shadow", clock)
    sub = Conversation("s-shadow", clock, agent_id="a00000000000000ab")
    first = sub.turn([user("Review hello.py")], [tool_use("r1", "Read", {"file_path": "hello.py"})])
    second = sub.turn([tool_result("r1", "print('hi')")], [text("CLAUDE-SAYS-FINE")])
    write(engine, [
        main.turn([user("hi")], [tool_use("c1", "Agent", {"description": "Review", "prompt": "Review hello.py",
                                                          "subagent_type": "code-reviewer"})]),
        first, second,
        shadow_record(first.flow_id, time.time(), shadow_columns([
            {"type": "text", "text": HOSTILE},
            {"type": "tool_use", "id": "g1", "name": "Grep", "input": {"pattern": "x"}}]), PROVIDER),
        shadow_record(second.flow_id, time.time(), shadow_columns([], error="timeout: no complete answer"), PROVIDER),
    ])
    with Session(engine) as db:
        ids = {e.flow_id: e.id for e in db.exec(select(Exchange)).all()}

    page = BeautifulSoup(client.get("/sessions/s-shadow").text, "html.parser")
    one = page.select_one(f"article#x-{ids[first.flow_id]} .shadow-answer")
    two = page.select_one(f"article#x-{ids[second.flow_id]} .shadow-answer")
    assert one is not None and two is not None
    shown = one.get_text(" ")
    assert "mock/gpt-mock" in shown and HOSTILE in shown and "Grep" in shown
    assert "in 70" in shown and "out 9" in shown and "$0.0031" in shown and "250 ms" in shown
    assert one.select_one("a")["href"] == f"/requests/{ids[first.flow_id]}"
    assert "timeout: no complete answer" in two.get_text(" ")
    assert not page.select(".shadow-answer script"), "captured text is escaped, never markup"
    assert "shadowed by mock/gpt-mock" in page.select_one("details.subagent summary").get_text(" ")
    assert len(page.select(".shadow-answer")) == 2  # the main thread is not shadowed
