"""The same storage on a real PostgreSQL server that the test starts: every captured request round-trips,
prune keeps what the remaining requests share, and the proxy records into it by URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from ccbridge.storage import maintenance
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange
from ccbridge.storage.read import rebuild_request_body
from ccbridge.storage.writer import Writer
from tests.support.mock_anthropic import MockAnthropic
from tests.support.postgres import started_or_skip
from tests.support.proxy import start_proxy
from tests.unit.ccbridge.storage.test_maintenance import fill_forked
from tests.unit.ccbridge.storage.test_writer import REQUESTS, captured_from_fixture, unholdable_exchanges

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with started_or_skip() as server:
        yield server.url


def test_every_fixture_request_round_trips_on_postgres(postgres_url: str):
    engine = open_engine(postgres_url)
    writer = Writer(engine, batch_size=5)
    for name, req in REQUESTS:
        writer.submit(captured_from_fixture(f"pg-{name}", req))
    writer.close()
    assert writer.failed == 0
    with Session(engine) as db:
        rows = {e.flow_id: e for e in db.exec(select(Exchange).where(Exchange.flow_id.startswith("pg-"))).all()}
        assert len(rows) == len(REQUESTS)
        for name, req in REQUESTS:
            if req["method"] == "POST":
                assert rebuild_request_body(db, rows[f"pg-{name}"]) == req["body"]
    engine.dispose()


def test_prune_on_postgres_keeps_what_a_recent_fork_shares(postgres_url: str):
    engine = open_engine(postgres_url)
    recent_body = fill_forked(engine)
    assert maintenance.prune(engine, days=30)["exchanges"] == 3
    with Session(engine) as db:
        kept = db.exec(select(Exchange).where(Exchange.session_id == "forked")).one()
        assert rebuild_request_body(db, kept) == recent_body
    engine.dispose()


def test_proxy_records_into_postgres_by_url(postgres_url: str, tmp_path: Path):
    with MockAnthropic() as mock, start_proxy(mock.url, tmp_path, storage_url=postgres_url) as proxy:
        body = {"model": "claude-opus-5-5", "max_tokens": 8, "stream": True,
                "messages": [{"role": "user", "content": "postgres please"}]}
        r = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-claude-code-session-id": "pg-session"})
        assert r.status_code == 200
    engine = open_engine(postgres_url)
    with Session(engine) as db:
        stored = db.exec(select(Exchange).where(Exchange.session_id == "pg-session")).all()
        assert len(stored) == 1 and stored[0].complete and stored[0].is_sse
    engine.dispose()


def test_values_postgres_refuses_are_fitted_and_the_exchanges_kept(postgres_url: str):
    engine = open_engine(postgres_url)
    items = unholdable_exchanges()
    for item in items:
        item.flow_id = f"pg-unholdable-{item.flow_id}"
    writer = Writer(engine, batch_size=10)
    for item in items:
        writer.submit(item)
    writer.close()
    assert writer.failed == 0
    with Session(engine) as db:
        rows = {e.flow_id.removeprefix("pg-unholdable-"): e
                for e in db.exec(select(Exchange).where(Exchange.flow_id.startswith("pg-unholdable-"))).all()}
        assert set(rows) == {"20-digits", "30-digits", "nul", "bad-utf8-header", "lone-surrogate"}
        assert rows["20-digits"].input_tokens is None and rows["20-digits"].problems
        assert rows["nul"].model == "claude\u2400x"
        assert rows["bad-utf8-header"].user_agent.endswith("\ufffd\ufffd")
        assert rows["lone-surrogate"].request_body_kind == "raw"
        # the NUL in the request body is kept: a JSON escape inside the stored pieces
        assert rebuild_request_body(db, rows["nul"]) == {"model": "claude\x00x", "messages": []}
    engine.dispose()
