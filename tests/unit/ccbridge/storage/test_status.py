"""`ccbridge status` on a journal: what is pending and since when, whether a proxy runs, the writer's counts."""

from __future__ import annotations

import re
from pathlib import Path

from ccbridge.cli import main
from ccbridge.storage.codec import pack
from ccbridge.storage.db import open_engine
from ccbridge.storage.drain import Drain
from ccbridge.storage.journal import Appender
from ccbridge.storage.status import age
from tests.unit.ccbridge.storage.test_drain import exchange, run_until_caught_up


def status(journal: Path, capsys) -> str:
    assert main(["status", "--journal", str(journal)]) == 0
    return capsys.readouterr().out


def test_status_of_a_running_proxy_then_after_its_writer_caught_up(tmp_path: Path, capsys):
    journal = tmp_path / "journal"
    appender = Appender(journal)
    for i in range(3):
        appender.append(pack(exchange(f"f{i}")))
    shown = status(journal, capsys)
    assert "proxy: running" in shown
    assert re.search(r"pending: 3 exchanges \(oldest \d+ s ago\)", shown)
    assert "recorded: unknown" in shown
    run_until_caught_up(Drain(lambda: open_engine(f"sqlite:///{tmp_path / 'cc.db'}"), journal))
    appender.close()
    shown = status(journal, capsys)
    assert "proxy: not running" in shown and "pending: 0 exchanges" in shown
    assert "recorded: 3, failed: 0" in shown


def test_status_without_a_journal_says_so(tmp_path: Path, capsys):
    assert "none yet" in status(tmp_path / "nowhere", capsys)


def test_ages_read_like_a_person_says_them():
    assert [age(s) for s in (5, 600, 3 * 3600, 3 * 86400)] == ["5 s", "10 min", "3.0 h", "3.0 days"]
