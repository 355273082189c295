"""The writer process on a real SQLite file and journal: everything submitted is written once and counted, a
killed child is replaced without loss, and a locked database cannot hold up the proxy's stop."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from ccbridge.captured import CapturedExchange
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import JournalCheckpoint
from ccbridge.storage.process import WriterProcess
from tests.support.builders import Conversation, text, user
from tests.support.processes import wait_for
from tests.support.stored import flow_ids

STOP_SECONDS = 2.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cc.db"


@pytest.fixture
def url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def writers() -> Iterator[list[WriterProcess]]:
    """The writers a test started (see `start`); any it left open are closed."""
    started: list[WriterProcess] = []
    yield started
    for writer in started:
        if writer.child.process.is_alive():
            writer.close()


def start(writers: list[WriterProcess], url: str, journal: Path) -> WriterProcess:
    writer = WriterProcess(url, journal, batch_size=4, batch_seconds=0.05, stop_seconds=STOP_SECONDS)
    writers.append(writer)
    return writer


def exchanges(count: int, session: str = "session-1") -> list[CapturedExchange]:
    conversation = Conversation(session, [time.time()])
    return [conversation.turn([user(f"{session} turn {i}")], [text("ok")]) for i in range(count)]


def submit(writer: WriterProcess, items: list[CapturedExchange]) -> list[str]:
    for item in items:
        writer.submit(item)
    return [item.flow_id for item in items]


def checkpoint_recorded(url: str) -> int:
    """How many records the journal's checkpoint says were stored, over every run."""
    engine = open_engine(url)
    try:
        with Session(engine) as db:
            return sum(row.recorded for row in db.exec(select(JournalCheckpoint)).all())
    finally:
        engine.dispose()




def test_every_submitted_exchange_is_written_and_counted(writers: list[WriterProcess], url: str,
                                                         journal: Path) -> None:
    writer = start(writers, url, journal)
    sent = submit(writer, exchanges(10))
    assert writer.flush(60)
    assert flow_ids(url) == sent
    writer.close()
    assert (writer.written, writer.failed, writer.pending, writer.lost) == (10, 0, 0, 0)
    assert writer.summary() == "10 exchanges recorded, 0 failed, 0 pending in the journal"


def test_a_new_writer_on_the_same_journal_writes_nothing_twice(writers: list[WriterProcess], url: str,
                                                               journal: Path) -> None:
    first = start(writers, url, journal)
    sent = submit(first, exchanges(5, "first-run"))
    first.close()
    second = start(writers, url, journal)
    sent += submit(second, exchanges(3, "second-run"))
    assert second.flush(60)
    second.close()
    assert flow_ids(url) == sent
    assert (first.written, second.written, second.pending) == (5, 3, 0)
    assert checkpoint_recorded(url) == 8, "a record of the first run was stored again"


def test_a_killed_child_is_replaced_and_nothing_is_lost(writers: list[WriterProcess], url: str,
                                                        journal: Path) -> None:
    writer = start(writers, url, journal)
    sent = submit(writer, exchanges(4, "before"))
    assert writer.flush(60)
    killed = writer.child.process
    sent += submit(writer, exchanges(4, "unflushed"))
    os.kill(killed.pid, signal.SIGKILL)
    sent += submit(writer, exchanges(4, "while-dead"))
    wait_for(lambda: writer.restarts > 0, 60.0, "the supervisor starts a new child")
    assert writer.restarts == 1 and writer.child.process is not killed and killed.exitcode == -signal.SIGKILL
    assert writer.flush(60)
    writer.close()
    assert flow_ids(url) == sent
    assert (writer.written, writer.failed, writer.pending) == (12, 0, 0)


def test_close_keeps_its_bound_on_a_locked_database_and_the_next_start_writes_the_rest(
        writers: list[WriterProcess], url: str, journal: Path, db_path: Path) -> None:
    writer = start(writers, url, journal)
    sent = submit(writer, exchanges(3, "before"))
    assert writer.flush(60)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        sent += submit(writer, exchanges(4, "locked-out"))
        closing = threading.Thread(target=writer.close)
        closing.start()
        # close() may spend stop_seconds, a second to exit and the supervisor's join; a close that waited for
        # the database would still be here when the lock is released below
        closing.join(STOP_SECONDS + 15)
        assert not closing.is_alive(), "close() waited for the locked database"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    closing.join(60)
    assert not writer.child.process.is_alive()
    assert flow_ids(url) == sent[:3]
    assert (writer.written, writer.pending) == (3, 4)
    assert f"4 pending in the journal {journal} (written at the next start)" in writer.summary()

    after = start(writers, url, journal)
    assert after.flush(60)
    after.close()
    assert flow_ids(url) == sent
    assert (after.written, after.pending) == (4, 0)
