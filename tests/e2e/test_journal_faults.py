"""Faults of real life against a real mitmdump: the database locked, the writer killed, mitmdump killed, a stop
while the database is away. Every exchange whose answer the client got reaches the database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ccbridge.storage.codec import unpack
from ccbridge.storage.drain import read_status
from ccbridge.storage.journal import START, Reader
from ccbridge.storage.read import rebuild_request_body
from tests.support.mock_anthropic import MockAnthropic
from tests.support.processes import wait_for
from tests.support.proxy import ProxyProcess, start_proxy, writer_children

pytestmark = [pytest.mark.e2e, pytest.mark.fault]
STOP_LIMIT = 15.0  # the issue: mitmdump stops within 15 s of SIGTERM, whatever the writer is doing
CLOSING = re.compile(r"ccbridge: (\d+) exchanges recorded, (\d+) failed, (\d+) pending in the journal")


def body(text: str, stream: bool = False) -> dict:
    return {"model": "claude-opus-5-5", "max_tokens": 16, "stream": stream,
            "messages": [{"role": "user", "content": text}]}




class Load:
    """`count` requests through the proxy from a background thread, `concurrency` at a time; `answered` grows
    with the prompt of each request whose whole answer the client received."""

    def __init__(self, url: str, count: int, concurrency: int = 10, prefix: str = "q") -> None:
        self.url, self.count, self.concurrency, self.prefix = url, count, concurrency, prefix
        self.answered: list[str] = []
        self.errors = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(180)

    async def _run(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:

            async def one(i: int) -> None:
                text = f"{self.prefix}{i}"
                async with gate:
                    try:
                        if i % 2:
                            r = await client.post("/v1/messages", json=body(text))
                            r.raise_for_status()
                        else:
                            async with client.stream("POST", "/v1/messages", json=body(text, True)) as r:
                                r.raise_for_status()
                                await r.aread()
                    except httpx.HTTPError:
                        self.errors += 1
                        return
                self.answered.append(text)

            await asyncio.gather(*(one(i) for i in range(self.count)))


def stored_prompts(proxy: ProxyProcess) -> list[str]:
    with proxy.db() as db:
        return [rebuild_request_body(db, e)["messages"][0]["content"] for e in proxy.exchanges()]


def journal_prompts(journal: Path) -> set[str]:
    """The prompts of every exchange in the journal (committed or not)."""
    batch = Reader(journal).read(START, max_records=100_000, max_bytes=1 << 40)
    return {json.loads(unpack(r.payload).request_body)["messages"][0]["content"] for r in batch.records}


@contextmanager
def locked(db_url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock (longer than the writer's busy timeout)."""
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def closing_counts(proxy: ProxyProcess) -> tuple[int, int, int]:
    found = CLOSING.findall(proxy.log())
    assert found, proxy.log_tail()
    recorded, failed, pending = map(int, found[-1])
    return recorded, failed, pending


def test_a_locked_database_delays_recording_but_loses_nothing_and_logs_one_outage(mock_anthropic: MockAnthropic,
                                                                                  tmp_path: Path):
    with start_proxy(mock_anthropic.url, tmp_path) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            assert client.post("/v1/messages", json=body("before")).status_code == 200
            wait_for(lambda: len(proxy.exchanges()) == 1, 30, "the first exchange is stored")
            with locked(proxy.db_url):
                for i in range(20):  # the proxy passes traffic untouched while the database is away
                    assert client.post("/v1/messages", json=body(f"during{i}", i % 2 == 0)).status_code == 200
                wait_for(lambda: "the database is unavailable" in proxy.log(), 60, "the outage is logged")
                for i in range(20, 40):
                    assert client.post("/v1/messages", json=body(f"during{i}")).status_code == 200
            wait_for(lambda: "the database is back" in proxy.log(), 60, "the writer resumes by itself")
            wait_for(lambda: len(proxy.exchanges()) == 41, 60, "the waiting exchanges are written")
        assert proxy.stop(timeout=STOP_LIMIT) == 0
    assert sorted(stored_prompts(proxy)) == sorted(["before", *(f"during{i}" for i in range(40))])
    log = proxy.log()
    assert log.count("the database is unavailable") == 1 and log.count("the database is back") == 1
    assert closing_counts(proxy) == (41, 0, 0)


def test_the_writer_killed_three_times_during_500_requests_loses_nothing(mock_anthropic: MockAnthropic,
                                                                          tmp_path: Path):
    journal = tmp_path / "journal"
    with start_proxy(mock_anthropic.url, tmp_path, journal_dir=journal) as proxy:
        killed: list[int] = []
        recorded = 0
        with Load(proxy.url, 500, concurrency=10) as load:
            for threshold in (100, 200, 300):
                wait_for(lambda t=threshold: len(load.answered) >= t, 120, f"{threshold} answers")
                # a writer at work (it has written since the last kill), not one that is starting
                wait_for(lambda before=recorded: read_status(journal).get("writer_pid") not in (None, *killed)
                         and (read_status(journal)["recorded"] > before or len(load.answered) == 500), 60,
                         "a (new) writer writes")
                recorded = read_status(journal)["recorded"]
                writer = read_status(journal)["writer_pid"]
                assert writer in writer_children(proxy.pid)
                os.kill(writer, signal.SIGKILL)
                killed.append(writer)
        assert load.errors == 0 and len(load.answered) == 500
        assert proxy.stop(signal.SIGTERM, timeout=STOP_LIMIT) == 0  # else stop() ends it with SIGKILL
    assert proxy.log().count("storage writer process stopped") == 3
    prompts = stored_prompts(proxy)
    assert sorted(prompts) == sorted(load.answered) and len(set(prompts)) == 500
    assert closing_counts(proxy) == (500, 0, 0)


def test_mitmdump_killed_during_load_loses_only_what_was_in_flight(mock_anthropic: MockAnthropic, tmp_path: Path):
    journal = tmp_path / "journal"
    first = start_proxy(mock_anthropic.url, tmp_path, journal_dir=journal)
    with first, Load(first.url, 400, concurrency=10) as load:
        wait_for(lambda: len(load.answered) >= 150, 120, "150 answers")
        finished = set(load.answered)
        # the response hook runs right after the client's last byte: wait until the journal has them
        wait_for(lambda: finished <= journal_prompts(journal), 30, "the answered exchanges are in the journal")
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # with requests still in flight
    with start_proxy(mock_anthropic.url, tmp_path, journal_dir=journal, storage_url=first.db_url) as second:
        wait_for(lambda: finished <= set(stored_prompts(second)), 60, "the next start writes the journal")
        assert second.stop(timeout=STOP_LIMIT) == 0
    prompts = stored_prompts(second)
    assert finished <= set(prompts) and len(prompts) == len(set(prompts))


def test_a_stop_while_the_database_is_locked_leaves_the_journal_for_the_next_start(mock_anthropic: MockAnthropic,
                                                                                    tmp_path: Path):
    journal = tmp_path / "journal"
    first = start_proxy(mock_anthropic.url, tmp_path, journal_dir=journal)
    with first:
        with locked(first.db_url), httpx.Client(base_url=first.url, timeout=30) as client:
            for i in range(10):
                assert client.post("/v1/messages", json=body(f"waiting{i}", i % 2 == 0)).status_code == 200
            wait_for(lambda: {f"waiting{i}" for i in range(10)} <= journal_prompts(journal), 30, "journal has all")
            assert first.stop(timeout=STOP_LIMIT) == 0
    assert closing_counts(first) == (0, 0, 10)
    assert first.exchanges() == []
    with start_proxy(mock_anthropic.url, tmp_path, journal_dir=journal, storage_url=first.db_url) as second:
        wait_for(lambda: len(second.exchanges()) == 10, 60, "the next start writes them")
        assert second.stop(timeout=STOP_LIMIT) == 0
    assert sorted(stored_prompts(second)) == sorted(f"waiting{i}" for i in range(10))
    assert "10 exchanges were left in the journal" in second.log()
    assert closing_counts(second) == (10, 0, 0)
