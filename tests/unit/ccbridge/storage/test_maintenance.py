"""storage/maintenance.py: prune keeps what the remaining exchanges use (shared prefixes too), and reset."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ccbridge.storage import maintenance, read
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Blob, Exchange, MessageNode, RawBody
from ccbridge.storage.models import Session as SessionRow
from tests.support.builders import Conversation, text, user, write
from tests.support.proxy import header

NOW = time.time()
DAY = 86_400.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    yield engine
    engine.dispose()


def blob_text(db: Session) -> str:
    return " ".join(b.json_text for b in db.exec(select(Blob)).all())


def fill_forked(engine: Engine) -> dict:
    """One session: an old request, an old follow-up, and a recent fork from the first request's answer."""
    old = Conversation("forked", [NOW - 40 * DAY])
    first = old.turn([user("shared start")], [text("shared answer")])
    fork = copy.deepcopy(old)
    old_branch = old.turn([user("old branch only")], [text("old branch answer")])
    fork.clock[0] = NOW - DAY
    recent = fork.turn([user("new branch")], [text("new answer")])
    other = Conversation("gone", [NOW - 50 * DAY]).turn([user("ancient words")], [text("ancient answer")])
    write(engine, [first, old_branch, recent, other])
    return json.loads(recent.request_body)


def test_prune_keeps_what_a_recent_fork_shares_and_deletes_the_rest(engine: Engine) -> None:
    recent_body = fill_forked(engine)
    counts = maintenance.prune(engine, days=30)
    assert counts["exchanges"] == 3 and counts["sessions"] == 1
    with Session(engine) as db:
        (kept,) = db.exec(select(Exchange)).all()
        assert read.rebuild_request_body(db, kept) == recent_body
        assert read.load_raw(db, kept.response_raw_hash)  # its stream still decodes (dictionary kept)
        texts = blob_text(db)
        for gone in ("old branch only", "old branch answer", "ancient words", "ancient answer"):
            assert gone not in texts
        for shared in ("shared start", "shared answer", "new branch", "new answer", "You are Claude Code"):
            assert shared in texts
        # only the kept request's path is left: shared start, shared answer, new branch
        assert len(db.exec(select(MessageNode)).all()) == 3 == kept.message_count
        assert [r.hash for r in db.exec(select(RawBody)).all()] == [kept.response_raw_hash]
        (summary,) = db.exec(select(SessionRow)).all()
        assert summary.id == "forked" and summary.request_count == 1
        # the other session's header list (its session id) and skeleton went; the kept request's are whole
        shared = {b.hash for b in db.exec(select(Blob).where(col(Blob.kind).in_(["headers", "skeleton"]))).all()}
        assert shared == {kept.request_headers_hash, kept.request_skeleton_hash}
        assert header(read.request_headers(db, kept), "x-claude-code-session-id") == "forked"
    assert counts["nodes"] == 2  # the old branch's last message, and the other session's one message


def test_prune_of_nothing_old_changes_nothing(engine: Engine) -> None:
    fill_forked(engine)
    with Session(engine) as db:
        before = (len(db.exec(select(Blob)).all()), len(db.exec(select(MessageNode)).all()))
    assert maintenance.prune(engine, days=60) == {"exchanges": 0, "sessions": 0, "blobs": 0, "nodes": 0, "raw": 0}
    with Session(engine) as db:
        assert (len(db.exec(select(Blob)).all()), len(db.exec(select(MessageNode)).all())) == before
        assert len(db.exec(select(Exchange)).all()) == 4


def test_reset_deletes_the_sqlite_file_and_its_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    engine = open_engine(url)
    write(engine, [Conversation("s", [NOW]).turn([user("hi")], [text("hello")])])
    engine.dispose()
    assert maintenance.reset(url) == f"deleted {tmp_path / 'cc.db'}"
    assert not list(tmp_path.iterdir())
    assert maintenance.reset(url).startswith("nothing to delete")
