"""Session listing: keyset pages that neither skip nor repeat, and each filter."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tests.support.builders import Conversation, text, user, write
from viewer import queries

DAY = datetime(2026, 5, 1, tzinfo=UTC).timestamp()


def fill(engine: Engine) -> None:
    items = []
    for i in range(23):
        clock = [DAY + i * 86_400 / 4]
        conv = Conversation(f"s{i:02d}", clock, model="claude-haiku-4-5" if i % 5 == 0 else "claude-sonnet-4-5")
        items.append(conv.turn([user(f"hello {i}")], [text("hi")], status=500 if i == 7 else 200))
        if i == 11:
            items.append(conv.turn([user("route me")], [text("routed answer")],
                                   route={"rule": "subagents", "agent": "code-reviewer", "provider": "openai",
                                          "model": "gpt-4o"}))
    write(engine, items)


def test_keyset_pages_cover_everything_once(engine: Engine) -> None:
    fill(engine)
    seen: list[str] = []
    cursor = None
    with Session(engine) as db:
        for _ in range(10):
            page = queries.list_sessions(db, cursor=cursor, limit=5)
            seen += [s.id for s in page.sessions]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == [f"s{i:02d}" for i in reversed(range(23))]


def test_filters(engine: Engine) -> None:
    fill(engine)
    with Session(engine) as db:
        def ids(**kw: object) -> set[str]:
            return {s.id for s in queries.list_sessions(db, queries.SessionFilter(**kw), limit=100).sessions}  # type: ignore[arg-type]

        assert ids(model="claude-haiku-4-5") == {f"s{i:02d}" for i in range(0, 23, 5)}
        assert ids(errors=True) == {"s07"}
        assert ids(routed=True) == {"s11"}
        assert ids(agent="code-reviewer") == {"s11"}
        assert ids(since=date(2026, 5, 5)) == {f"s{i:02d}" for i in range(16, 23)}
        assert ids(until=date(2026, 5, 1)) == {f"s{i:02d}" for i in range(4)}


def test_pager_link_on_the_page(engine: Engine, client: TestClient) -> None:
    fill(engine)
    page = BeautifulSoup(client.get("/", params={"errors": ""}).text, "html.parser")
    assert len(page.select("tr.session-row")) == 23 and page.select_one("a[rel=next]") is None
    with Session(engine) as db:
        cursor = queries.list_sessions(db, limit=20).next_cursor
    second = BeautifulSoup(client.get("/", params={"cursor": cursor}).text, "html.parser")
    assert [r["data-session"] for r in second.select("tr.session-row")] == ["s02", "s01", "s00"]
    filtered = BeautifulSoup(client.get("/", params={"model": "claude-haiku-4-5"}).text, "html.parser")
    assert len(filtered.select("tr.session-row")) == 5
    assert queries.decode_cursor("garbage!") is None
