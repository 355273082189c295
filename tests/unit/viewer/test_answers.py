"""The request page and API show the original answer and stored replays side by side, escaped."""

from __future__ import annotations

import time

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ccbridge.storage.alternates import alternate_row, store_alternate
from ccbridge.storage.models import Exchange
from tests.support.builders import Conversation, text, tool_use, user, write

HOSTILE = "<script>alert('replay')</script> REPLAY-TEXT-7c1"


def replay_columns(model: str, content: list[dict[str, object]], *, error: str | None = None) -> dict[str, object]:
    return {"provider": "mock", "model": model, "api": "chat", "request": {"model": model},
            "answer": {"role": "assistant", "content": content, "stop_reason": "end_turn"} if content else None,
            "raw_response": None, "input_tokens": 90, "output_tokens": 12, "cache_read_tokens": 10,
            "cost_usd": 0.0042, "ttfb_ms": 321.0, "duration_ms": 900.0, "error": error}


def test_three_answers_side_by_side(engine: Engine, client: TestClient) -> None:
    write(engine, [Conversation("s1", [time.time()]).turn([user("Review hello.py")],
                                                         [text("ORIGINAL-ANSWER-51a"),
                                                          tool_use("t1", "Read", {"file_path": "hello.py"})])])
    with Session(engine) as db:
        exchange_id = db.exec(select(Exchange.id)).one() or 0
    store_alternate(engine, alternate_row(exchange_id, "replay", replay_columns("gpt-mock", [
        {"type": "text", "text": HOSTILE},
        {"type": "tool_use", "id": "c1", "name": "Grep", "input": {"pattern": "GREP-PATTERN-e2"}}])))
    store_alternate(engine, alternate_row(exchange_id, "replay",
                                          replay_columns("gpt-mock-2", [], error="HTTP 404: no such model")))

    page = BeautifulSoup(client.get(f"/requests/{exchange_id}").text, "html.parser")
    columns = page.select("section.answers article.answer-column")
    assert [c.select_one(".answer-route").get_text() for c in columns] == [
        "anthropic/claude-sonnet-4-5", "mock/gpt-mock", "mock/gpt-mock-2"]
    original, replay, failed = (c.get_text(" ") for c in columns)
    assert "ORIGINAL-ANSWER-51a" in original and "hello.py" in original and "Read" in original
    assert HOSTILE in replay and "GREP-PATTERN-e2" in replay and "Grep" in replay
    assert "in 100 · out 12" in replay and "$0.0042" in replay and "321 ms" in replay and "end_turn" in replay
    assert "HTTP 404: no such model" in failed
    assert not page.select("section.answers script"), "captured text is escaped, never markup"

    document = client.get(f"/api/requests/{exchange_id}").json()
    answers = document["answers"]
    assert [a["route"] for a in answers] == ["anthropic/claude-sonnet-4-5", "mock/gpt-mock", "mock/gpt-mock-2"]
    assert [a["kind"] for a in answers] == ["original", "replay", "replay"]
    assert answers[1]["texts"] == [HOSTILE] and answers[1]["tool_calls"][0]["name"] == "Grep"
    assert answers[1]["tokens"] == {"input": 100, "output": 12} and answers[1]["time_to_first_byte_ms"] == 321.0
    assert answers[2]["error"] == "HTTP 404: no such model"


def test_a_request_without_replays_shows_no_comparison(engine: Engine, client: TestClient) -> None:
    write(engine, [Conversation("s2", [time.time()]).turn([user("hi")], [text("hello")])])
    with Session(engine) as db:
        exchange_id = db.exec(select(Exchange.id)).one() or 0
    page = BeautifulSoup(client.get(f"/requests/{exchange_id}").text, "html.parser")
    assert page.select("section.answers") == []
    assert [a["kind"] for a in client.get(f"/api/requests/{exchange_id}").json()["answers"]] == ["original"]
