"""PostgreSQL stopped for a minute while Claude Code keeps working through a real mitmdump: the proxy passes
every request, the exchanges wait in the journal, and all of them are in the database once it is back."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange
from ccbridge.storage.read import rebuild_request_body
from tests.support.mock_anthropic import MockAnthropic
from tests.support.postgres import PostgresServer, started_or_skip
from tests.support.processes import wait_for
from tests.support.proxy import start_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.fault]

# the number; CCBRIDGE_OUTAGE_SECONDS shortens it for a local run
OUTAGE_SECONDS = float(os.environ.get("CCBRIDGE_OUTAGE_SECONDS", "60"))
# the writer retries with a backoff capped at 30 s: after the restart it may wait that long, then catches up
CATCH_UP_SECONDS = 120.0
UNAVAILABLE = "the database is unavailable"
BACK = "the database is back"




class Traffic:
    """Requests through the proxy from `workers` threads, each with its own connection, until the block ends;
    `answered` holds the prompt of every request whose whole answer the client received."""

    def __init__(self, url: str, workers: int = 3, pause: float = 0.1) -> None:
        self.url, self.pause = url, pause
        self.answered: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(workers)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                prompt = f"w{worker}-{i}"
                stream = i % 2 == 0
                body = {"model": "claude-opus-5-5", "max_tokens": 16, "stream": stream,
                        "messages": [{"role": "user", "content": prompt}]}
                try:
                    r = client.post("/v1/messages", json=body, headers={"x-claude-code-session-id": "outage"})
                    r.raise_for_status()
                    assert (b"message_stop" if stream else b'"end_turn"') in r.content
                    self.answered.append(prompt)
                except (httpx.HTTPError, AssertionError) as exc:
                    self.failures.append(f"{prompt}: {exc!r}")
                i += 1
                self._stop.wait(self.pause)


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with started_or_skip() as server:
        yield server


def stored_count(url: str) -> int:
    engine = open_engine(url, create=False)
    try:
        with Session(engine) as db:
            return db.exec(select(func.count()).select_from(Exchange)).one()
    finally:
        engine.dispose()


def stored_prompts(url: str) -> list[str]:
    engine = open_engine(url, create=False)
    try:
        with Session(engine) as db:
            return [rebuild_request_body(db, e)["messages"][0]["content"] for e in db.exec(select(Exchange)).all()]
    finally:
        engine.dispose()


def test_postgres_stopped_for_a_minute_loses_no_exchange_and_logs_one_outage(postgres: PostgresServer,
                                                                            tmp_path: Path):
    with MockAnthropic() as mock, start_proxy(mock.url, tmp_path, storage_url=postgres.url) as proxy:
        with Traffic(proxy.url) as traffic:
            wait_for(lambda: stored_count(postgres.url) >= 10, 60, "the first exchanges are stored")
            postgres.stop()
            before = len(traffic.answered)
            wait_for(lambda: UNAVAILABLE in proxy.log(), 30, "the outage is logged")
            time.sleep(max(0.0, OUTAGE_SECONDS - 1))
            during = len(traffic.answered) - before
            postgres.start()
            wait_for(lambda: len(traffic.answered) >= before + during + 20, 60, "more answers after the restart")
        assert traffic.failures == []  # the proxy passed every request while the database was away
        assert during >= OUTAGE_SECONDS  # traffic did flow during the outage (several requests a second)
        sent = len(traffic.answered)
        wait_for(lambda: stored_count(postgres.url) >= sent, CATCH_UP_SECONDS, f"all {sent} exchanges are stored")
        wait_for(lambda: BACK in proxy.log(), 10, "the end of the outage is logged")
        assert proxy.stop(timeout=15) == 0
    prompts = stored_prompts(postgres.url)
    assert sorted(prompts) == sorted(traffic.answered) and len(set(prompts)) == sent
    log = proxy.log()
    assert log.count(UNAVAILABLE) == 1 and log.count(BACK) == 1, proxy.log_tail()
    assert f"{sent} exchanges recorded, 0 failed, 0 pending in the journal" in log
    print(f"PostgreSQL outage {OUTAGE_SECONDS:.0f} s: {sent} exchanges answered, {during} during the outage, "
          f"{len(prompts)} stored")
