"""`ccbridge prune` and `ccbridge db-reset`, through main() and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from ccbridge import cli
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Blob, Exchange, MessageNode, RawBody
from ccbridge.storage.models import Session as SessionRow
from ccbridge.storage.read import rebuild_request_body
from tests.support.builders import Conversation, text, user, write

REPO = Path(__file__).resolve().parents[3]
NOW = time.time()
DAY = 86_400.0


def fill(url: str) -> None:
    engine = open_engine(url)
    old = Conversation("old", [NOW - 40 * DAY])
    mixed = Conversation("mixed", [NOW - 40 * DAY])
    new = Conversation("new", [NOW - DAY])
    items = [old.turn([user("ancient words")], [text("old answer")]), mixed.turn([user("first")], [text("a")])]
    mixed.clock[0] = NOW - 2 * DAY
    items += [mixed.turn([user("second")], [text("b")]), new.turn([user("fresh")], [text("c")])]
    write(engine, items)
    engine.dispose()


def test_prune_deletes_old_exchanges_and_their_orphans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    fill(url)
    assert cli.main(["prune", "--days", "30", "--db", url]) == 0
    assert "2 exchanges" in capsys.readouterr().out
    engine = open_engine(url)
    with Session(engine) as db:
        sessions = {s.id: s for s in db.exec(select(SessionRow)).all()}
        assert set(sessions) == {"mixed", "new"}
        assert sessions["mixed"].request_count == 1
        blobs = " ".join(b.json_text for b in db.exec(select(Blob)).all())
        assert "ancient words" not in blobs and "old answer" not in blobs
        # what is left still rebuilds: no piece a kept exchange needs was removed
        for row in db.exec(select(Exchange)).all():
            body = rebuild_request_body(db, row)
            assert isinstance(body, dict) and body["messages"]
        nodes = db.exec(select(MessageNode)).all()
        assert len(nodes) == sum(row.message_count for row in db.exec(select(Exchange)).all())
        used_raw = {r.response_raw_hash for r in db.exec(select(Exchange)).all()}
        assert {r.hash for r in db.exec(select(RawBody)).all()} == used_raw
    engine.dispose()


def run_cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CCBRIDGE_")}
    return subprocess.run([sys.executable, "-m", "ccbridge.cli", *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin, timeout=60, check=False,
                          env={**clean, "PYTHONPATH": f"{REPO / 'addons'}:{REPO}"})


def test_db_reset_needs_yes_without_a_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    fill(url)
    refused = run_cli("db-reset", "--db", url, cwd=tmp_path, stdin="y\n")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert (tmp_path / "cc.db").exists()
    done = run_cli("db-reset", "--db", url, "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "cc.db").exists() and "deleted" in done.stdout


def test_db_reset_asks_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    fill(url)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    assert cli.main(["db-reset", "--db", url], ask=lambda _q: "n") == 1
    assert (tmp_path / "cc.db").exists()
    assert cli.main(["db-reset", "--db", url], ask=lambda _q: "yes") == 0
    assert not (tmp_path / "cc.db").exists()


def test_default_url_comes_from_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(f"storage:\n  url: sqlite:///{tmp_path / 'from-config.db'}\n")
    fill(f"sqlite:///{tmp_path / 'from-config.db'}")
    result = run_cli("prune", "--days", "1000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr and "0 exchanges" in result.stdout
