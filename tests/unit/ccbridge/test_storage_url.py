"""One rule picks the capture database (option, $CCBRIDGE_STORAGE_URL, storage.url, default), and both the
`ccbridge` CLI and the viewer follow it. The proxy's side is tests/e2e/test_storage_url.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlmodel import Session, select

import viewer.__main__ as viewer_main
from ccbridge import cli
from ccbridge.settings import STORAGE_URL_ENV, default_url, parse_settings, storage_url
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Session as SessionRow
from tests.support.builders import Conversation, text, user, write

DAY = 86_400.0


def test_option_then_environment_then_config_then_default() -> None:
    configured = parse_settings({"storage": {"url": "sqlite:///config.db"}}, env={})
    env = {STORAGE_URL_ENV: "sqlite:///env.db"}
    assert storage_url("sqlite:///option.db", configured, env) == "sqlite:///option.db"
    assert storage_url(None, configured, env) == "sqlite:///env.db"
    assert storage_url(None, configured, {}) == "sqlite:///config.db"
    assert storage_url(None, parse_settings({}, env={}), {}) == default_url()
    assert storage_url("", configured, {STORAGE_URL_ENV: ""}) == "sqlite:///config.db", "empty means unset"


def old_session(url: str, session_id: str) -> None:
    """A database holding one session whose only exchange is 40 days old."""
    engine = open_engine(url)
    conversation = Conversation(session_id, [time.time() - 40 * DAY])
    write(engine, [conversation.turn([user("hello")], [text("hi")])])
    engine.dispose()


def session_ids(url: str) -> set[str]:
    engine = open_engine(url)
    with Session(engine) as db:
        ids = {row.id for row in db.exec(select(SessionRow)).all()}
    engine.dispose()
    return ids


@pytest.fixture
def two_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(the environment's database, config.yaml's database), each with one session; cwd holds the config."""
    from_env, from_config = f"sqlite:///{tmp_path / 'env.db'}", f"sqlite:///{tmp_path / 'config.db'}"
    old_session(from_env, "session-in-env-db")
    old_session(from_config, "session-in-config-db")
    (tmp_path / "config.yaml").write_text(f"storage:\n  url: {from_config}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CCBRIDGE_CONFIG", raising=False)
    monkeypatch.setenv(STORAGE_URL_ENV, from_env)
    return from_env, from_config


def test_ccbridge_prune_works_on_the_environments_database(two_databases: tuple[str, str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from_env, from_config = two_databases
    assert cli.main(["prune", "--days", "30"]) == 0
    assert "1 exchanges" in capsys.readouterr().out
    assert session_ids(from_env) == set()
    assert session_ids(from_config) == {"session-in-config-db"}


def test_the_viewer_shows_the_environments_database(two_databases: tuple[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    assert viewer_main.main(["--port", "0"]) == 0
    with TestClient(served["app"], base_url="http://127.0.0.1") as client:
        sessions = client.get("/api/sessions").json()["sessions"]
    assert [s["id"] for s in sessions] == ["session-in-env-db"]
