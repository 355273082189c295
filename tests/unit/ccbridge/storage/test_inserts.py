"""storage/inserts.py: a row whose key is stored already is skipped, the others go in."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from ccbridge.storage.db import open_engine
from ccbridge.storage.inserts import insert_ignoring_duplicates
from ccbridge.storage.models import Blob, Exchange, table_of
from ccbridge.storage.record import EXCHANGE_DEFAULTS, when


def blob(digest: str, text: str) -> dict[str, object]:
    return {"hash": digest, "kind": "message", "size": len(text), "json_text": text}


def test_rows_whose_key_exists_are_skipped_and_the_rest_inserted(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    with engine.begin() as conn:
        insert_ignoring_duplicates(conn, table_of(Blob), [blob("b", '"first"')])
    with engine.begin() as conn:
        insert_ignoring_duplicates(conn, table_of(Blob), [blob("c", '"new"'), blob("b", '"second"'), blob("a", '"x"')])
        exchange = dict(EXCHANGE_DEFAULTS, flow_id="f", started_at=when(1.0), method="POST", scheme="https",
                        host="h", port=443, path="/")
        insert_ignoring_duplicates(conn, table_of(Exchange), [exchange, dict(exchange, path="/again")], key="flow_id")
    with Session(engine) as db:
        assert {b.hash: b.json_text for b in db.exec(select(Blob)).all()} == {"a": '"x"', "b": '"first"', "c": '"new"'}
        assert [e.path for e in db.exec(select(Exchange)).all()] == ["/"]
    engine.dispose()
