"""The same storage on a real PostgreSQL server that the test starts: every captured request round-trips,
prune keeps what the remaining requests share, and the proxy records into it by URL."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, text
from sqlmodel import Session, col, select

from ccbridge.storage import maintenance
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Blob, Exchange
from ccbridge.storage.models import Session as SessionRow
from ccbridge.storage.pieces import decompose
from ccbridge.storage.read import rebuild_request_body, request_headers
from ccbridge.storage.writer import Committer, Writer
from tests.fixtures import FIXTURES, captured_requests
from tests.support.builders import Conversation, user
from tests.support.builders import text as text_block
from tests.support.mock_anthropic import MockAnthropic
from tests.support.postgres import started_or_skip
from tests.support.proxy import ProxyProcess, header, start_proxy
from tests.unit.ccbridge.storage.test_maintenance import fill_forked
from tests.unit.ccbridge.storage.test_upgrade import OLD_RELEASE, assert_rebuilds_as_before, load_old_release
from tests.unit.ccbridge.storage.test_upgrade import SESSION as OLD_SESSION
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


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the test's server: the proxies create its tables at the same time."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def conversation(turns: int) -> tuple[list[tuple[str, str]], list[bytes]]:
    """Headers and the request bodies of a `turns`-turn conversation grown from the 2.1.329 capture."""
    base = next(captured_requests(FIXTURES / "2.1.329" / "hello.jsonl"))
    headers = [(k, v) for k, v in base["headers"] if k.lower() not in ("host", "content-length")]
    body = copy.deepcopy(base["body"])
    bodies = []
    for turn in range(turns):
        bodies.append(json.dumps(body).encode())
        body["messages"] += [{"role": "assistant", "content": [{"type": "text", "text": f"Answer {turn}."}]},
                             {"role": "user", "content": [{"type": "text", "text": f"Question {turn + 1}?"}]}]
    return headers, bodies


def test_two_proxies_record_one_conversation_at_once_into_one_postgres(postgres_url: str, tmp_path: Path):
    url = fresh_database(postgres_url, "two_proxies")
    headers, bodies = conversation(30)
    session_id = dict((k.lower(), v) for k, v in headers)["x-claude-code-session-id"]
    with MockAnthropic() as mock, ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(start_proxy, mock.url, tmp_path, storage_url=url) for _ in range(2)]
        proxies = [f.result() for f in starting]
        try:
            together = threading.Barrier(2, timeout=60)

            def send_all(proxy: ProxyProcess) -> list[int]:
                with httpx.Client(base_url=proxy.url, timeout=60) as client:
                    statuses = []
                    for body in bodies:
                        together.wait()  # both proxies get each turn at the same moment
                        statuses.append(client.post("/v1/messages?beta=true", content=body,
                                                    headers=headers).status_code)
                    return statuses

            sent = [pool.submit(send_all, p) for p in proxies]
            assert [f.result() for f in sent] == [[200] * len(bodies)] * 2
            engine = open_engine(url)
            deadline = time.monotonic() + 120
            while stored_count(engine) < 2 * len(bodies) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            codes = [p.stop() for p in proxies]
    assert codes == [0, 0]
    for proxy in proxies:
        log = proxy.log()
        for bad in ("Error", "Traceback", "duplicate key", "deadlock"):
            assert bad not in log, f"{bad!r} in the log of {proxy.workdir}:\n{proxy.log_tail()}"
    with Session(engine) as db:
        rows = db.exec(select(Exchange)).all()
        per_flow = Counter(e.flow_id for e in rows)
        assert len(per_flow) == 2 * len(bodies) and set(per_flow.values()) == {1}
        # each turn was stored once per proxy, and each rebuilds to what was sent
        by_turn = Counter(e.message_count for e in rows)
        assert by_turn == {len(json.loads(b)["messages"]): 2 for b in bodies}
        sent_bodies = {len(json.loads(b)["messages"]): json.loads(b) for b in bodies}
        for e in rows:
            assert rebuild_request_body(db, e) == sent_bodies[e.message_count]
            assert header(request_headers(db, e), "x-claude-code-session-id") == session_id
        # the conversation's pieces are stored once although both proxies sent them
        messages = {h for b in bodies for h in decompose(json.loads(b)).message_refs}
        answers = {e.response_message_hash for e in rows}
        stored_messages = db.exec(select(Blob.hash).where(col(Blob.kind) == "message")).all()
        assert None not in answers and sorted(stored_messages) == sorted(messages | answers)
        summary = db.get(SessionRow, session_id)
        assert summary is not None and summary.request_count == 2 * len(bodies)
        assert summary.input_tokens == sum(e.input_tokens or 0 for e in rows)
        assert summary.output_tokens == sum(e.output_tokens or 0 for e in rows)
        assert summary.started_at == min(e.started_at for e in rows)
        assert summary.last_activity_at == max(e.finished_at or e.started_at for e in rows)
    engine.dispose()


def stored_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Exchange)).scalar_one()


def test_writers_committing_one_session_at_once_neither_fail_nor_lose_counts(postgres_url: str):
    url = fresh_database(postgres_url, "two_writers")
    engines = [open_engine(url) for _ in range(2)]
    committers = [Committer(engine) for engine in engines]
    rounds, turns = 40, 3
    together = threading.Barrier(2, timeout=60)

    def write(writer: int) -> None:
        for r in range(rounds):
            # a session is new in one round (both create it) and known in the next (both update it); the
            # writers' requests share no piece, so nothing else orders their transactions
            talk = Conversation(f"race-{r // 2}", [time.time()], model=f"claude-{writer}",
                                extra_headers=[("x-writer", str(writer))])
            built = [committers[writer].build(talk.turn([user(f"{writer}: question {k}")],
                                                        [text_block(f"{writer}: answer {k}")]))
                     for k in range(turns)]
            together.wait()
            try:
                committers[writer].commit(built)
            except Exception:
                together.abort()  # the other writer stops waiting too
                raise

    with ThreadPoolExecutor(2) as pool:
        failures = [f.exception() for f in [pool.submit(write, w) for w in range(2)]]
    # what a writer raised (a duplicate key, a deadlock), not the other one's broken barrier
    assert failures == [None, None], [repr(f) for f in failures if not isinstance(f, threading.BrokenBarrierError)]
    with Session(engines[0]) as db:
        for r in range(rounds // 2):
            rows = db.exec(select(Exchange).where(Exchange.session_id == f"race-{r}")).all()
            summary = db.get(SessionRow, f"race-{r}")
            assert len(rows) == 4 * turns and summary is not None
            assert summary.request_count == 4 * turns and summary.models == ["claude-0", "claude-1"]
            assert summary.output_tokens == sum(e.output_tokens or 0 for e in rows)
            assert summary.last_activity_at == max(e.finished_at or e.started_at for e in rows)
    for engine in engines:
        engine.dispose()


def test_proxies_starting_together_create_the_tables_once(postgres_url: str):
    url = fresh_database(postgres_url, "created_together")
    together = threading.Barrier(4, timeout=60)

    def start() -> None:
        together.wait()
        open_engine(url).dispose()  # creates what is missing

    with ThreadPoolExecutor(4) as pool:
        failures = [f.exception() for f in [pool.submit(start) for _ in range(4)]]
    assert failures == [None] * 4
    engine = open_engine(url, create=False)
    assert stored_count(engine) == 0  # the tables are there, and empty
    engine.dispose()


def test_a_database_of_the_previous_release_is_upgraded_once_by_proxies_opening_it_together(
        postgres_url: str, caplog: pytest.LogCaptureFixture):
    url = fresh_database(postgres_url, "old_release")
    load_old_release(url)
    together = threading.Barrier(4, timeout=60)

    def start() -> None:
        together.wait()
        open_engine(url).dispose()

    with caplog.at_level(logging.INFO, logger="ccbridge.storage"), ThreadPoolExecutor(4) as pool:
        failures = [f.exception() for f in [pool.submit(start) for _ in range(4)]]
    assert failures == [None] * 4
    assert sum("upgrading the capture database" in r.getMessage() for r in caplog.records) == 1
    engine = open_engine(url)
    assert_rebuilds_as_before(engine)
    chat = Conversation(OLD_SESSION, [1_790_000_100.0])
    writer = Writer(engine)
    writer.submit(chat.turn([user("After the upgrade.")], [text_block("Still here.")]))
    writer.close()
    assert writer.failed == 0 and stored_count(engine) == len(OLD_RELEASE["expected"]) + 1
    engine.dispose()
