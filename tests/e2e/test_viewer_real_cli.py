"""Done-when #1: storage filled by the real Claude Code CLI through the proxy renders as threads, the subagent
run nested under the parent's Agent call with its prompt and answer, in the page and in the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from ccbridge.storage.db import open_engine
from tests.support.claude_cli import agent_markdown, run_claude
from tests.support.mock_anthropic import (
    MockAnthropic,
    delegating,
)
from tests.support.proxy import ProxyProcess
from viewer.app import create_app

pytestmark = pytest.mark.e2e

PROMPT = "Please review the file hello.py and report any issues. MARKER-VIEWER-PROMPT-5d1e"
SUBAGENT_TEXT = "Review complete: hello.py looks fine. MARKER-VIEWER-SUBAGENT"
REVIEWER = agent_markdown("code-reviewer", "Reviews code for problems.", "You are a meticulous code reviewer.")


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_real_cli_session_renders_with_nested_subagent(mock_anthropic: MockAnthropic, proxy: ProxyProcess,
                                                       tmp_path: Path, background: bool) -> None:
    mock_anthropic.handler = delegating(PROMPT, SUBAGENT_TEXT, "The reviewer reported back. MARKER-VIEWER-FINAL",
                                        background=background)
    result = run_claude("Review hello.py with the code-reviewer agent.", proxy.url, tmp_path=tmp_path,
                        agents={"code-reviewer": REVIEWER}, files={"hello.py": "print('hello')\n"})
    assert result.returncode == 0, result.stderr
    assert proxy.stop() == 0, proxy.log_tail()
    assert any(e.request.header("x-claude-code-agent-id") for e in mock_anthropic.exchanges)
    engine = open_engine(proxy.db_url)
    try:
        with TestClient(create_app(engine)) as client:
            sessions = client.get("/api/sessions").json()["sessions"]
            assert len(sessions) == 1 and sessions[0]["subagent_runs"] == 1
            sid = sessions[0]["id"]
            data = client.get(f"/api/sessions/{sid}").json()
            assert data["unlinked_subagents"] == []
            answers = [t["answer"] for th in data["threads"] for t in th["turns"] if t["answer"]]
            calls = [b for a in answers for b in a["content"] if b["type"] == "tool_use" and b["name"] == "Agent"]
            (call,) = calls
            (run,) = call["subagents"]
            assert PROMPT in run["prompt"] and SUBAGENT_TEXT in run["answer"]
            page = BeautifulSoup(client.get(f"/sessions/{sid}").text, "html.parser")
            nested = page.select_one("div.tool-call details.subagent")
            assert nested is not None
            assert PROMPT in nested.select_one(".run-prompt").get_text()
            assert SUBAGENT_TEXT in nested.select_one(".run-answer").get_text()
            assert "MARKER-VIEWER-FINAL" in page.select_one("#transcript").get_text()
    finally:
        engine.dispose()
