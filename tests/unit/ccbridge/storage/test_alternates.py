"""Other models' answers stored linked to the exchange they answer, read back, and pruned with it."""

from __future__ import annotations

import time
from pathlib import Path

from sqlmodel import Session, select

from ccbridge.storage import maintenance, read
from ccbridge.storage.alternates import alternate_row, store_alternate
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import AlternateAnswer, Exchange
from tests.support.builders import Conversation, text, user, write

DAY = 86_400.0


def columns(answer_text: str) -> dict[str, object]:
    return {"provider": "mock", "model": "gpt-mock", "api": "chat", "request": {"model": "gpt-mock"},
            "answer": {"role": "assistant", "content": [{"type": "text", "text": answer_text}]},
            "raw_response": b"data: {}\n", "input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 0,
            "cost_usd": None, "ttfb_ms": 12.5, "duration_ms": 40.0, "error": None}


def test_answers_are_stored_per_exchange_and_read_back_in_order(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    write(engine, [Conversation("s", [time.time()]).turn([user("hi")], [text("hello")])])
    with Session(engine) as db:
        exchange_id = db.exec(select(Exchange.id)).one()
    assert exchange_id is not None
    first = store_alternate(engine, alternate_row(exchange_id, "replay", columns("first\ud800answer")))
    second = store_alternate(engine, alternate_row(exchange_id, "replay", columns("second")))
    with Session(engine) as db:
        stored = read.alternate_answers(db, exchange_id)
        assert read.alternate_answers(db, exchange_id + 1) == []
    assert [a.id for a in stored] == [first, second]
    # no database stores a lone surrogate: it is replaced, the rest kept
    assert stored[0].answer is not None and stored[0].answer["content"][0]["text"] == "first\ufffdanswer"
    assert stored[1].raw_response == b"data: {}\n" and stored[1].kind == "replay"
    engine.dispose()


def test_prune_deletes_the_answers_of_the_exchanges_it_deletes(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    now = time.time()
    write(engine, [Conversation("old", [now - 40 * DAY]).turn([user("old")], [text("a")]),
                   Conversation("new", [now - DAY]).turn([user("new")], [text("b")])])
    with Session(engine) as db:
        ids = {e.session_id: e.id for e in db.exec(select(Exchange))}
    for session_id in ("old", "new"):
        store_alternate(engine, alternate_row(ids[session_id] or 0, "replay", columns(session_id)))
    counts = maintenance.prune(engine, days=30)
    with Session(engine) as db:
        left = [a.exchange_id for a in db.exec(select(AlternateAnswer))]
    assert counts["alternates"] == 1 and left == [ids["new"]]
    engine.dispose()
