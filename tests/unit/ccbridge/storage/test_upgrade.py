"""storage/upgrade.py: a database the previous release (7d15ee9) recorded opens with the current code.

The old database comes from `old_release/capture_7d15ee9.json`, made by running that release's own Writer
(`old_release/make_fixture.py` says how): its DDL, every row, and the request bodies and header lists the
old code rebuilt from it. `load_old_release` puts it into a fresh database; the PostgreSQL variant in
tests/e2e/test_postgres.py uses the same loader.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import DateTime, LargeBinary, MetaData, create_engine, inspect, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ccbridge.storage import read, upgrade
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange, table_of
from tests.support.builders import Conversation, user, write
from tests.support.builders import text as text_block
from viewer.app import create_app

OLD_RELEASE = json.loads((Path(__file__).parent / "old_release" / "capture_7d15ee9.json").read_text("utf-8"))
SESSION = "5b0c9a51-old-release-session"


def load_old_release(url: str) -> None:
    """Create the old release's tables at `url` and fill them with the rows it wrote."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in OLD_RELEASE["ddl"][engine.dialect.name]:
                conn.execute(text(statement))
            tables = MetaData()
            tables.reflect(conn)
            for name, rows in OLD_RELEASE["rows"].items():
                if rows:
                    table = tables.tables[name]
                    conn.execute(table.insert(), [_typed(table, row) for row in rows])
            if conn.dialect.name == "postgresql":  # ids given: the sequence moves past them, as with the old writer
                conn.execute(text("SELECT setval(pg_get_serial_sequence('exchange', 'id'), max(id)) FROM exchange"))
    finally:
        engine.dispose()


def _typed(table: Any, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        kind = table.c[key].type
        if value is not None and isinstance(kind, DateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(kind, LargeBinary):
            value = base64.b64decode(value)
        out[key] = value
    return out


def expected_body(flow_id: str) -> Any:
    stored = OLD_RELEASE["expected"][flow_id]["body"]
    return base64.b64decode(stored["bytes"]) if "bytes" in stored else stored["json"]


def assert_rebuilds_as_before(engine: Engine) -> None:
    with Session(engine) as db:
        exchanges = {e.flow_id: e for e in db.exec(select(Exchange)).scalars()}
        assert sorted(exchanges) == sorted(OLD_RELEASE["expected"])
        for flow_id, expected in OLD_RELEASE["expected"].items():
            exchange = exchanges[flow_id]
            assert read.rebuild_request_body(db, exchange) == expected_body(flow_id), flow_id
            assert read.request_headers(db, exchange) == expected["headers"], flow_id


def snapshot(engine: Engine) -> dict[str, Any]:
    """The schema and every row, to tell whether anything changed."""
    schema = inspect(engine)
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        rows = {name: sorted(map(repr, conn.execute(select(t)).all())) for name, t in tables.tables.items()}
    return {"columns": {n: [c["name"] for c in schema.get_columns(n)] for n in tables.tables},
            "indexes": {n: sorted(i["name"] or "" for i in schema.get_indexes(n)) for n in tables.tables},
            "rows": rows}


@pytest.fixture
def old_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    load_old_release(url)
    return url


@pytest.fixture
def upgraded(old_url: str) -> Iterator[Engine]:
    engine = open_engine(old_url)
    yield engine
    engine.dispose()


def test_the_fixture_has_the_old_layout(old_url: str) -> None:
    engine = create_engine(old_url)
    columns = {c["name"] for c in inspect(engine).get_columns("exchange")}
    engine.dispose()
    assert set(upgrade.OLD_COLUMNS) <= columns and not set(upgrade.NEW_COLUMNS) & columns


def test_every_old_request_rebuilds_as_the_old_release_rebuilt_it(upgraded: Engine) -> None:
    assert_rebuilds_as_before(upgraded)
    with Session(upgraded) as db:
        kinds = {e.request_body_kind for e in db.exec(select(Exchange)).scalars()}
    assert kinds == {"messages", "raw", "empty"}  # the fixture covers every kind of body


def test_the_exchange_table_ends_as_the_model_declares_it(upgraded: Engine) -> None:
    schema = inspect(upgraded)
    assert {c["name"] for c in schema.get_columns("exchange")} == set(table_of(Exchange).c.keys())
    assert "ix_exchange_session_id" not in {i["name"] for i in schema.get_indexes("exchange")}


def test_the_header_list_is_shared_and_its_varying_values_stay_on_the_row(upgraded: Engine) -> None:
    with Session(upgraded) as db:
        turns = [db.exec(select(Exchange).where(Exchange.flow_id == f)).scalar_one() for f in ("flow-turn-1",
                                                                                              "flow-turn-2")]
        assert turns[0].request_headers_hash == turns[1].request_headers_hash
        assert turns[0].request_header_values != turns[1].request_header_values  # content-length, request id
        assert turns[0].request_skeleton_hash == turns[1].request_skeleton_hash


def test_the_viewer_shows_the_old_session(upgraded: Engine) -> None:
    with TestClient(create_app(upgraded)) as client:
        sessions = client.get("/api/sessions").json()["sessions"]
        assert [s["id"] for s in sessions] == [SESSION]
        page = client.get(f"/sessions/{SESSION}")
        assert page.status_code == 200 and "List the files." in page.text
        api = client.get(f"/api/sessions/{SESSION}").json()
        last = api["threads"][0]["turns"][-1]["exchange"]["id"]
        request = client.get(f"/api/requests/{last}").json()
        assert request["request"] == expected_body("flow-turn-2")
        assert client.get(f"/requests/{last}").status_code == 200


def test_new_exchanges_are_written_next_to_the_old_ones(upgraded: Engine) -> None:
    chat = Conversation(SESSION, [1_790_000_100.0])
    write(upgraded, [chat.turn([user("After the upgrade.")], [text_block("Still here.")])])
    with Session(upgraded) as db:
        exchanges = db.exec(select(Exchange).order_by(Exchange.id)).scalars().all()
        assert len(exchanges) == len(OLD_RELEASE["expected"]) + 1
        body = read.rebuild_request_body(db, exchanges[-1])
        assert isinstance(body, dict) and body["messages"][-1] == user("After the upgrade.")
    with TestClient(create_app(upgraded)) as client:
        (session,) = client.get("/api/sessions").json()["sessions"]
        assert session["requests"] == len(OLD_RELEASE["expected"]) + 1


def test_a_second_upgrade_changes_nothing(old_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ccbridge.storage"):
        open_engine(old_url).dispose()
    assert sum("upgrading the capture database: 6 exchanges" in r.message for r in caplog.records) == 1
    engine = open_engine(old_url)
    before = snapshot(engine)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ccbridge.storage"):
        upgrade.upgrade(engine, 1)
        engine.dispose()
        engine = open_engine(old_url)
    assert not [r for r in caplog.records if "upgrad" in r.message]
    assert snapshot(engine) == before
    engine.dispose()


def test_an_upgrade_cut_short_resumes_on_the_next_open(old_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upgrade, "BATCH", 2)
    convert = upgrade._convert_batch
    calls = []

    def crash_on_second_batch(conn: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is stopped while a batch is being written
        return convert(conn)

    monkeypatch.setattr(upgrade, "_convert_batch", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        open_engine(old_url)
    half = create_engine(old_url)
    with half.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("exchange")}
        converted = conn.execute(text("SELECT count(*) FROM exchange WHERE request_headers_hash IS NOT NULL"))
        assert set(upgrade.OLD_COLUMNS) <= columns and converted.scalar_one() == 2  # the first batch only
    half.dispose()
    monkeypatch.setattr(upgrade, "_convert_batch", convert)
    engine = open_engine(old_url)
    assert_rebuilds_as_before(engine)
    engine.dispose()


def test_processes_opening_it_together_convert_each_row_once(old_url: str, caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []
    engines: list[Engine] = []

    def open_it() -> None:
        try:
            engines.append(open_engine(old_url))
        except BaseException as exc:
            errors.append(exc)

    openers = [threading.Thread(target=open_it) for _ in range(3)]
    with caplog.at_level(logging.INFO, logger="ccbridge.storage"):
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()
    assert errors == []
    done = [r.args for r in caplog.records if r.msg.startswith("ccbridge: capture database upgraded")]
    assert sum(args[0] for args in done if isinstance(args, tuple)) == len(OLD_RELEASE["expected"])
    assert_rebuilds_as_before(engines[0])
    with Session(engines[0]) as db:
        assert len(db.exec(select(Exchange)).all()) == len(OLD_RELEASE["expected"])
    for engine in engines:
        engine.dispose()


def test_repeated_flow_ids_keep_the_first_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every release declared flow_id unique; a database without it (altered by hand) is repaired
    ddl = [s.replace(", \n\tUNIQUE (flow_id)", "") for s in OLD_RELEASE["ddl"]["sqlite"]]
    assert ddl != OLD_RELEASE["ddl"]["sqlite"]
    rows = dict(OLD_RELEASE["rows"])
    rows["exchange"] = [*rows["exchange"], dict(rows["exchange"][0], id=99, path="/v1/messages?again")]
    monkeypatch.setitem(OLD_RELEASE, "ddl", {"sqlite": ddl})
    monkeypatch.setitem(OLD_RELEASE, "rows", rows)
    url = f"sqlite:///{tmp_path / 'doubled.db'}"
    load_old_release(url)
    engine = open_engine(url)
    with Session(engine) as db:
        paths = db.exec(select(Exchange.path).where(Exchange.flow_id == "flow-turn-1")).scalars().all()
    assert paths == ["/v1/messages"]
    assert_rebuilds_as_before(engine)
    engine.dispose()
