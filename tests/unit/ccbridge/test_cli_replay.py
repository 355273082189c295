"""`ccbridge replay` through main(): answers from each route stored and printed; mistakes said before sending."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select

from ccbridge import cli
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import AlternateAnswer, Exchange
from tests.support.builders import Conversation, text, user, write
from tests.support.mock_openai import MockOpenAI, chunk, text_chunks, usage


def recorded(tmp_path: Path) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    engine = open_engine(url)
    write(engine, [Conversation("s", [time.time()]).turn([user("Review hello.py")], [text("Original answer.")])])
    with Session(engine) as db:
        exchange_id = db.exec(select(Exchange.id)).one() or 0
    engine.dispose()
    return url, exchange_id


def config(tmp_path: Path, base_url: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"providers": {"mock": {"base_url": base_url, "api_key": "sk-mock"}}}))
    return str(path)


def test_replay_stores_and_prints_each_routes_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, exchange_id = recorded(tmp_path)
    with MockOpenAI() as server:
        server.script = [*text_chunks("Replayed answer.\nSecond line."),
                         chunk(finish_reason="stop", usage=usage(50, 7))]
        code = cli.main(["--config", config(tmp_path, server.base_url), "replay", str(exchange_id),
                         "--route", "mock/gpt-mock", "--route", "mock/gpt-mock-2", "--db", url])
        models = [r["model"] for r in server.chat_requests]
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(models) == ["gpt-mock", "gpt-mock-2"]
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["route", "in", "out"]
    assert "original anthropic/claude-sonnet-4-5" in lines[1] and "Original answer." in lines[1]
    assert lines[2].startswith("mock/gpt-mock ") and "Replayed answer." in lines[2] and "Second line" not in lines[2]
    assert lines[3].startswith("mock/gpt-mock-2 ") and " 50 " in lines[3] and " 7 " in lines[3]
    assert f"stored 2 replay(s) of request #{exchange_id}" in out
    engine = open_engine(url)
    with Session(engine) as db:
        stored = db.exec(select(AlternateAnswer).order_by(AlternateAnswer.id)).all()  # type: ignore[arg-type]
    engine.dispose()
    assert [(a.exchange_id, a.kind, a.provider, a.model) for a in stored] == [
        (exchange_id, "replay", "mock", "gpt-mock"), (exchange_id, "replay", "mock", "gpt-mock-2")]
    assert all(a.answer and a.answer["content"][0]["text"] == "Replayed answer.\nSecond line." for a in stored)


def test_replay_says_what_is_wrong_before_sending_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    url, exchange_id = recorded(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with MockOpenAI() as server:
        cfg = config(tmp_path, server.base_url)
        no_key = cli.main(["--config", cfg, "replay", str(exchange_id), "--route", "mock/gpt-mock",
                           "--route", "anthropic/claude-haiku-4-5", "--db", url])
        assert "ANTHROPIC_API_KEY" in capsys.readouterr().err
        missing = cli.main(["--config", cfg, "replay", str(exchange_id + 99), "--route", "mock/gpt-mock", "--db", url])
        assert f"no request #{exchange_id + 99}" in capsys.readouterr().err
        assert server.chat_requests == []
    assert (no_key, missing) == (2, 1)
