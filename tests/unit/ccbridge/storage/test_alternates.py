"""Other models' answers stored linked to the exchange they answer, read back, and pruned with it."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ccbridge.captured import CapturedExchange
from ccbridge.routes import Provider
from ccbridge.routing.shadow import shadow_record
from ccbridge.storage import maintenance, read
from ccbridge.storage.alternates import alternate_row, store_alternate
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import AlternateAnswer, Exchange
from ccbridge.storage.models import Session as CCSession
from ccbridge.storage.writer import Writer, raw_rows
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


# --- shadow answers: records of the journal, linked by flow id whichever is stored first ------------------


def shadow_of(flow_id: str, answer_text: str = "shadow says hi", **overrides: object) -> CapturedExchange:
    provider = Provider(name="mock", base_url="http://127.0.0.1:9/v1", kind="openai-compatible", api_key="k")
    return shadow_record(flow_id, time.time(), {**columns(answer_text), **overrides}, provider)


def shadows(engine: Engine) -> list[AlternateAnswer]:
    with Session(engine) as db:
        return list(db.exec(select(AlternateAnswer)).all())


def exchange_id_of(engine: Engine, flow_id: str) -> int | None:
    with Session(engine) as db:
        return db.exec(select(Exchange.id).where(Exchange.flow_id == flow_id)).one()


def test_a_shadow_stored_after_its_exchange_is_linked_to_it(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    original = Conversation("s", [time.time()]).turn([user("hi")], [text("hello")])
    write(engine, [original])
    write(engine, [shadow_of(original.flow_id)])
    [row] = shadows(engine)
    assert row.kind == "shadow" and row.flow_id == original.flow_id
    assert row.exchange_id == exchange_id_of(engine, original.flow_id)
    assert row.answer is not None and row.answer["content"][0]["text"] == "shadow says hi"
    facts = (row.provider, row.model, row.input_tokens, row.output_tokens, row.ttfb_ms)
    assert facts == ("mock", "gpt-mock", 10, 5, 12.5)
    assert row.request == {"model": "gpt-mock"} and row.raw_response == b"data: {}\n"
    with Session(engine) as db:
        assert [a.id for a in read.alternate_answers(db, row.exchange_id or 0)] == [row.id]
        assert db.exec(select(Exchange)).all()[0].flow_id == original.flow_id  # no exchange row for the shadow


def test_a_shadow_stored_before_its_exchange_is_linked_when_the_exchange_comes(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    original = Conversation("s", [time.time()]).turn([user("hi")], [text("hello")])
    write(engine, [shadow_of(original.flow_id)])
    assert [r.exchange_id for r in shadows(engine)] == [None]
    write(engine, [original])
    assert [r.exchange_id for r in shadows(engine)] == [exchange_id_of(engine, original.flow_id)]


def test_a_shadow_and_its_exchange_in_one_batch_are_linked(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    original = Conversation("s", [time.time()]).turn([user("hi")], [text("hello")])
    write(engine, [shadow_of(original.flow_id), original])
    assert [r.exchange_id for r in shadows(engine)] == [exchange_id_of(engine, original.flow_id)]
    with Session(engine) as db:
        summary = db.get(CCSession, "s")
        assert summary is not None and summary.request_count == 1  # the shadow is no request of the session


def test_a_shadow_delivered_twice_is_stored_once(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    record = shadow_of("flow-x")
    write(engine, [record, record])
    write(engine, [record])
    assert len(shadows(engine)) == 1


def test_a_failed_shadow_is_stored_with_its_error(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    write(engine, [shadow_of("flow-y", answer=None, raw_response=None, input_tokens=None, output_tokens=None,
                             error="timeout: no complete answer within 5 s")])
    [row] = shadows(engine)
    assert row.answer is None and row.error == "timeout: no complete answer within 5 s"


def test_a_shadow_record_the_database_refuses_whole_keeps_its_facts() -> None:
    rows = raw_rows(shadow_of("flow-z"), b"salt", problem="insert failed")
    assert rows.alternate is not None
    assert rows.alternate["flow_id"] == "flow-z" and rows.alternate["answer"] is None
    assert rows.alternate["error"] == "insert failed"


def test_a_database_made_before_shadow_answers_keeps_storing_exchanges(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    with engine.begin() as conn:  # the table as the first replay release made it
        conn.exec_driver_sql("DROP TABLE alternateanswer")
        conn.exec_driver_sql("CREATE TABLE alternateanswer (id INTEGER PRIMARY KEY, exchange_id INTEGER NOT NULL, "
                             "kind VARCHAR(16) NOT NULL, provider VARCHAR(128) NOT NULL, model VARCHAR(255) NOT NULL, "
                             "created_at DATETIME NOT NULL)")
    original = Conversation("s", [time.time()]).turn([user("hi")], [text("hello")])
    writer = Writer(engine, batch_size=10)
    writer.submit(shadow_of(original.flow_id))
    writer.submit(original)
    writer.close()
    assert (writer.written, writer.failed) == (1, 1)
    assert exchange_id_of(engine, original.flow_id) is not None
