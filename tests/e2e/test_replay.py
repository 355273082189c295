"""`ccbridge replay` (issue 9, done-when 5): a request recorded through a real mitmdump, replayed on other models
by the installed `ccbridge` command, and the request page showing the answers side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest
import yaml
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from ccbridge.storage.db import open_engine
from tests.support.mock_anthropic import MOCK_TEXT, MockAnthropic
from tests.support.mock_openai import MockOpenAI, chunk, text_chunks, usage
from tests.support.proxy import ProxyProcess
from viewer.app import create_app

pytestmark = pytest.mark.e2e

PROMPT = "Say hello. MARKER-REPLAY-PROMPT-3b9"
REPLAY_TEXT = "Hello from a replay on the mock provider. REPLAY-ANSWER-8d2"


def record_one(proxy: ProxyProcess) -> int:
    """Send one streamed request through mitmdump; the number it was stored under (after mitmdump stopped)."""
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-api03-fake-key", max_retries=0, timeout=60)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                messages=[{"role": "user", "content": PROMPT}]) as stream:
        assert stream.get_final_text() == MOCK_TEXT
    assert proxy.stop() == 0
    (exchange,) = [e for e in proxy.exchanges() if e.path == "/v1/messages"]
    assert exchange.id is not None
    return exchange.id


def run_replay(tmp_path: Path, db_url: str, number: int, routes: list[str], config: dict[str, object],
               env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config_path = tmp_path / "replay-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    args = [sys.executable, "-m", "ccbridge.cli", "--config", str(config_path), "replay", str(number),
            "--db", db_url, "--timeout", "30"]
    for route in routes:
        args += ["--route", route]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**clean, **env}, check=False)


def answer_columns(db_url: str, number: int) -> list[tuple[str, str]]:
    engine = open_engine(db_url)
    try:
        with TestClient(create_app(engine)) as client:
            page = BeautifulSoup(client.get(f"/requests/{number}").text, "html.parser")
    finally:
        engine.dispose()
    return [(c.select_one(".answer-route").get_text(), c.get_text(" "))
            for c in page.select("section.answers article.answer-column")]


def test_replay_on_two_provider_models_shows_three_answers(proxy: ProxyProcess, tmp_path: Path) -> None:
    number = record_one(proxy)
    assert proxy.db_url is not None
    with MockOpenAI() as provider:
        provider.script = [*text_chunks(REPLAY_TEXT), chunk(finish_reason="stop", usage=usage(21, 13))]
        done = run_replay(tmp_path, proxy.db_url, number, ["mock/gpt-mock", "mock/gpt-mock-2"],
                          {"providers": {"mock": {"base_url": provider.base_url, "api_key": "sk-mock"}}}, {})
        sent = provider.chat_requests
    assert done.returncode == 0, done.stderr
    assert sorted(r["model"] for r in sent) == ["gpt-mock", "gpt-mock-2"]
    assert all(PROMPT in str(r["messages"]) for r in sent), "the recorded request, translated, was sent"
    assert "stored 2 replay(s)" in done.stdout and done.stdout.count("REPLAY-ANSWER-8d2") == 2

    columns = answer_columns(proxy.db_url, number)
    assert [route for route, _ in columns] == ["anthropic/claude-sonnet-4-5", "mock/gpt-mock", "mock/gpt-mock-2"]
    original, *replays = (text for _, text in columns)
    assert MOCK_TEXT in original
    assert all(REPLAY_TEXT in text and "in 21 · out 13" in text for text in replays)


def test_replay_on_an_anthropic_model_uses_the_key_from_the_environment(
        proxy: ProxyProcess, mock_anthropic: MockAnthropic, tmp_path: Path) -> None:
    number = record_one(proxy)
    assert proxy.db_url is not None
    before = len(mock_anthropic.requests)
    done = run_replay(tmp_path, proxy.db_url, number, ["anthropic/claude-haiku-4-5"], {},
                      {"ANTHROPIC_API_KEY": "sk-ant-replay-key", "ANTHROPIC_BASE_URL": mock_anthropic.url})
    assert done.returncode == 0, done.stderr
    (replayed,) = mock_anthropic.requests[before:]
    assert replayed.json()["model"] == "claude-haiku-4-5" and PROMPT in str(replayed.json()["messages"])
    assert replayed.header("x-api-key") == "sk-ant-replay-key"
    columns = answer_columns(proxy.db_url, number)
    assert [route for route, _ in columns] == ["anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"]
    assert MOCK_TEXT in columns[1][1]

    without_key = run_replay(tmp_path, proxy.db_url, number, ["anthropic/claude-haiku-4-5"], {}, {})
    assert without_key.returncode == 2 and "ANTHROPIC_API_KEY" in without_key.stderr
