"""The journal's writer on a real SQLite file: it commits what the journal holds with its position, waits out
an outage without losing or skipping anything, and a record the database refuses does not block the rest."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import Session, select

from ccbridge.captured import CapturedExchange
from ccbridge.storage import drain as drain_module
from ccbridge.storage import record, writer
from ccbridge.storage.codec import pack
from ccbridge.storage.db import open_engine
from ccbridge.storage.drain import Backoff, DatabaseUnavailable, Drain, failure_reasons, read_status
from ccbridge.storage.journal import Appender, Position, Reader, segments
from ccbridge.storage.models import Exchange, JournalCheckpoint


def exchange(flow_id: str, input_tokens: int = 12) -> CapturedExchange:
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-5-5",
              "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
              "usage": {"input_tokens": input_tokens, "output_tokens": 3}}
    body = {"model": "claude-opus-5-5", "max_tokens": 8, "messages": [{"role": "user", "content": flow_id}]}
    now = time.time()
    return CapturedExchange(
        flow_id=flow_id, started_at=now, method="POST", scheme="https", host="api.anthropic.com", port=443,
        path="/v1/messages", query=[], http_version="HTTP/1.1",
        request_headers=[("content-type", "application/json")], request_body=json.dumps(body).encode(),
        status_code=200, response_headers=[("content-type", "application/json")],
        response_chunks=[json.dumps(answer).encode()], finished_at=now, complete=True)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cc.db'}"


def drain_for(db_url: str, journal: Path, **kwargs) -> Drain:
    return Drain(lambda: open_engine(db_url, busy_seconds=0.2), journal, batch_size=50, **kwargs)


def run_until_caught_up(drain: Drain) -> None:
    for _ in range(1000):
        if not drain.step():
            return
    raise AssertionError("the drain never caught up")


def stored(db_url: str) -> list[Exchange]:
    engine = open_engine(db_url)
    with Session(engine) as db:
        rows = list(db.exec(select(Exchange).order_by(Exchange.flow_id)).all())
    engine.dispose()
    return rows


def test_everything_appended_is_committed_with_its_position_and_counts(db_url: str, tmp_path: Path):
    appender = Appender(tmp_path / "journal", segment_bytes=4096)
    for i in range(120):
        appender.append(pack(exchange(f"f{i:03d}")))
    appender.close()
    drain = drain_for(db_url, tmp_path / "journal")
    run_until_caught_up(drain)
    assert [e.flow_id for e in stored(db_url)] == [f"f{i:03d}" for i in range(120)]
    assert drain.recorded == 120 and drain.failed == 0
    assert len(segments(tmp_path / "journal")) == 1  # every committed, sealed segment is deleted
    status = read_status(tmp_path / "journal")
    assert status["recorded"] == 120 and Position(*status["position"]) == drain.position


def test_replaying_a_journal_twice_leaves_one_copy(db_url: str, tmp_path: Path):
    appender = Appender(tmp_path / "journal")
    for i in range(10):
        appender.append(pack(exchange(f"f{i}")))
    run_until_caught_up(drain_for(db_url, tmp_path / "journal"))
    engine = open_engine(db_url)
    with engine.begin() as conn:  # as if the writer had died before its checkpoint: everything again
        conn.execute(JournalCheckpoint.__table__.update().values(segment=0, offset=0))
    engine.dispose()
    run_until_caught_up(drain_for(db_url, tmp_path / "journal"))
    assert len(stored(db_url)) == 10
    appender.close()


def test_a_new_writer_continues_from_the_committed_position(db_url: str, tmp_path: Path):
    appender = Appender(tmp_path / "journal")
    for i in range(5):
        appender.append(pack(exchange(f"a{i}")))
    first = drain_for(db_url, tmp_path / "journal")
    run_until_caught_up(first)
    for i in range(5):
        appender.append(pack(exchange(f"b{i}")))
    second = drain_for(db_url, tmp_path / "journal")
    run_until_caught_up(second)
    assert second.recorded == 10  # the counts continue too
    assert len(stored(db_url)) == 10
    appender.close()


def test_a_locked_database_is_an_outage_nothing_moves_and_it_resumes(db_url: str, tmp_path: Path):
    appender = Appender(tmp_path / "journal")
    appender.append(pack(exchange("before")))
    drain = drain_for(db_url, tmp_path / "journal")
    run_until_caught_up(drain)
    for i in range(3):
        appender.append(pack(exchange(f"during{i}")))
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        position = drain.position
        with pytest.raises(DatabaseUnavailable, match="locked"):
            drain.step()
        assert drain.position == position and drain.failed == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    run_until_caught_up(drain)
    assert [e.flow_id for e in stored(db_url)] == ["before", "during0", "during1", "during2"]
    assert drain.failed == 0 and Reader(tmp_path / "journal").backlog(drain.position).records == 0
    appender.close()


def test_a_record_the_database_refuses_is_stored_raw_and_the_rest_of_its_batch_goes_in(db_url: str,
                                                                                         tmp_path: Path):
    odd = exchange("odd")
    odd.route = {"provider": b"bytes are not JSON"}  # fails at insert, after its rows were built
    appender = Appender(tmp_path / "journal")
    for captured in (exchange("good1"), odd, exchange("good2")):
        appender.append(pack(captured))
    drain = drain_for(db_url, tmp_path / "journal")
    run_until_caught_up(drain)
    rows = {e.flow_id: e for e in stored(db_url)}
    assert set(rows) == {"good1", "odd", "good2"}
    assert rows["good1"].input_tokens == 12 and rows["good2"].input_tokens == 12
    assert rows["odd"].request_body_kind == "raw" and rows["odd"].response_raw_hash
    assert "the database refused it" in rows["odd"].error_message
    assert drain.recorded == 3 and drain.failed == 0
    appender.close()


def test_a_record_refused_even_raw_is_set_aside_and_counted_and_never_retried(db_url: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    # rows are normally fitted to what the database holds (storage/holdable.py); without that, this one is not
    monkeypatch.setattr(record, "finish", lambda rows: None)
    monkeypatch.setattr(writer, "finish", lambda rows: None)
    appender = Appender(tmp_path / "journal")
    appender.append(pack(exchange("good1")))
    appender.append(pack(replace(exchange("huge"), status_code=10**30)))  # too large for an SQLite INTEGER
    appender.append(pack(exchange("good2")))
    drain = drain_for(db_url, tmp_path / "journal")
    run_until_caught_up(drain)
    assert [e.flow_id for e in stored(db_url)] == ["good1", "good2"]
    assert drain.recorded == 2 and drain.failed == 1
    [(reason, count)] = failure_reasons(tmp_path / "journal").items()
    assert count == 1 and "the database refused it" in reason and "Overflow" in reason
    assert not drain.step()  # nothing left to try
    appender.close()


def test_an_unreadable_record_is_set_aside_with_its_reason_and_counted(db_url: str, tmp_path: Path):
    appender = Appender(tmp_path / "journal")
    appender.append(pack(exchange("good1")))
    appender.append(b"not a pickled exchange")
    appender.append(pack(exchange("good2")))
    reported = []
    drain = drain_for(db_url, tmp_path / "journal", report=lambda *m: reported.append(m))
    run_until_caught_up(drain)
    assert [e.flow_id for e in stored(db_url)] == ["good1", "good2"]
    assert drain.recorded == 2 and drain.failed == 1
    [(reason, count)] = failure_reasons(tmp_path / "journal").items()
    assert count == 1 and reason.startswith("unreadable journal record")
    assert [m for m in reported if m[0] == "failed"] == [("failed", reason)]
    [kept] = (tmp_path / "journal" / "failed").glob("*.record")
    assert kept.read_bytes() == b"not a pickled exchange"
    appender.close()


def test_backoff_doubles_up_to_its_cap_and_starts_again_after_a_success():
    backoff = Backoff()
    waits = [backoff.next() for _ in range(9)]
    assert waits == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    backoff.reset()
    assert backoff.next() == 0.5


def test_rows_beyond_the_memory_budget_are_committed_in_groups_and_an_outage_between_them_resumes(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # each record alone is over the budget: a batch of gzip bombs must not be built all at once
    monkeypatch.setattr(drain_module, "ROWS_BYTES", 1)
    commits: list[list[str]] = []
    real_commit = writer.Committer.commit

    def commit(self, built, also=None):
        if len(commits) == 2 and fail_third:
            raise RuntimeError("the server went away")
        commits.append([rows.exchange["flow_id"] for rows in built])
        return real_commit(self, built, also)

    monkeypatch.setattr(writer.Committer, "commit", commit)
    fail_third = True
    appender = Appender(tmp_path / "journal")
    ends = [appender.append(pack(exchange(f"f{i}"))) for i in range(5)]
    drain = drain_for(db_url, tmp_path / "journal")
    monkeypatch.setattr(Drain, "_database_works", lambda self: False)  # the probe fails too: an outage
    with pytest.raises(DatabaseUnavailable):
        drain.step()
    assert commits == [["f0"], ["f1"]] and drain.position == ends[1] and drain.recorded == 2
    assert [e.flow_id for e in stored(db_url)] == ["f0", "f1"]
    fail_third = False
    run_until_caught_up(drain)
    assert commits[2:] == [["f2"], ["f3"], ["f4"]]
    assert [e.flow_id for e in stored(db_url)] == [f"f{i}" for i in range(5)] and drain.recorded == 5
    appender.close()
