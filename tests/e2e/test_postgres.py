"""The same storage on a real PostgreSQL server that the test starts: every captured request round-trips,
prune keeps what the remaining requests share, and the proxy records into it by URL."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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
from tests.support.processes import stop_process
from tests.support.proxy import start_proxy
from tests.unit.ccbridge.storage.test_maintenance import fill_forked
from tests.unit.ccbridge.storage.test_writer import REQUESTS, captured_from_fixture, unholdable_exchanges

pytestmark = pytest.mark.postgres


def postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, server = postgres_bin("initdb"), postgres_bin("postgres")
    if not initdb or not server:
        message = "PostgreSQL server binaries not found: apt-get install postgresql (.ci/run does)"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    # not under pytest's temp root: that is private to its owner, and the server may run as another user
    top = Path(tempfile.mkdtemp(prefix="ccbridge-pg-"))
    try:
        yield from _serve(top, initdb, server)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _serve(top: Path, initdb: str, server: str) -> Iterator[str]:
    data = top / "data"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user (setpriv execs)
        user = pwd.getpwnam("postgres")
        os.chown(top, user.pw_uid, user.pw_gid)
        os.chown(data, user.pw_uid, user.pw_gid)
        as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "ccbridge", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    log = (top / "postgres.log").open("wb")
    process = subprocess.Popen([*as_user, server, "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                                "-k", str(data), "-c", "fsync=off"], stdout=log, stderr=subprocess.STDOUT)
    url = f"postgresql+psycopg://ccbridge@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                open_engine(url).dispose()
                break
            except Exception:
                if process.poll() is not None:
                    raise RuntimeError((top / "postgres.log").read_text()) from None
                time.sleep(0.2)
        else:
            raise RuntimeError("PostgreSQL did not start within 30 s")
        yield url
    finally:
        stop_process(process, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        log.close()


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
