"""The real Claude Code CLI through mitmdump + the ccbridge addon, in front of the mock Anthropic API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.claude_cli import agent_markdown, run_claude
from tests.support.mock_anthropic import (
    MOCK_TEXT,
    MockAnthropic,
    delegating,
)
from tests.support.proxy import ProxyProcess, header

pytestmark = pytest.mark.e2e

SUBAGENT_TEXT = "Review complete: hello.py looks fine. MOCK-SUBAGENT-ANSWER"
FINAL_TEXT = "The code-reviewer subagent finished. MOCK-FINAL-ANSWER"
REVIEWER = agent_markdown("code-reviewer", "Reviews code for problems. Use it after writing code.",
                          "You are a meticulous code reviewer. MARKER-REVIEWER-7f3a")


def assert_capture_matches_mock(proxy: ProxyProcess, mock: MockAnthropic) -> dict[str, Any]:
    """Stop the proxy; every request the mock got is stored with its session and the exact bytes sent back."""
    from ccbridge.storage.models import Session as CCSession
    from ccbridge.storage.read import load_raw, rebuild_request_body

    sent = mock.wait_for(len(mock.exchanges))
    assert proxy.stop() == 0, proxy.log_tail()
    stored = proxy.exchanges()
    assert len(stored) == len(sent), [(e.method, e.path) for e in stored]
    by_id = {header(e.response_headers, "request-id"): e for e in stored}
    with proxy.db() as db:
        for mock_exchange in sent:
            request = mock_exchange.request
            exchange = by_id[mock_exchange.request_id]
            assert exchange.complete and exchange.error_kind is None
            assert exchange.status_code == mock_exchange.status
            if request.method != "POST":  # older CLIs probe with HEAD / first
                continue
            assert exchange.session_id == request.header("x-claude-code-session-id")
            assert load_raw(db, exchange.response_raw_hash) == mock_exchange.response_body
            assert rebuild_request_body(db, exchange) == request.json()
            version = re.match(r"claude-cli/(\S+)", request.header("user-agent") or "")
            assert version and exchange.client_version == version.group(1)
            assert exchange.model == request.json()["model"]
            assert exchange.stream is True
        sessions = {e.session_id for e in stored if e.session_id}
        for session_id in sessions:
            summary = db.get(CCSession, session_id)
            assert summary is not None
            assert summary.request_count == sum(e.session_id == session_id for e in stored)
    return by_id


def test_say_hello(claude: Path, mock_anthropic: MockAnthropic, proxy: ProxyProcess, tmp_path: Path) -> None:
    result = run_claude("say hello", proxy.url, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert MOCK_TEXT in result.stdout
    sent = mock_anthropic.exchanges
    assert sent, "the CLI sent nothing"
    assert all(e.request.header("x-claude-code-session-id") for e in sent if e.request.method == "POST")
    stored = assert_capture_matches_mock(proxy, mock_anthropic)
    answer = stored[sent[-1].request_id]
    assert answer.stop_reason == "end_turn"
    assert answer.output_tokens == 42
    assert answer.cache_read_input_tokens == 13_000
    assert not answer.is_subagent


delegate_to_code_reviewer = delegating(
    "Please review the file hello.py and report any issues. MARKER-PARENT-PROMPT-91c2", SUBAGENT_TEXT, FINAL_TEXT)


def test_subagent_is_recorded_in_the_parent_session(claude: Path, mock_anthropic: MockAnthropic,
                                                    proxy: ProxyProcess, tmp_path: Path) -> None:
    from ccbridge.storage.models import Blob
    from ccbridge.storage.models import Session as CCSession

    mock_anthropic.handler = delegate_to_code_reviewer
    result = run_claude("Review hello.py with the code-reviewer agent.", proxy.url, tmp_path=tmp_path,
                        agents={"code-reviewer": REVIEWER}, files={"hello.py": "print('hello')\n"})

    assert result.returncode == 0, result.stderr
    assert FINAL_TEXT in result.stdout
    posts = [e for e in mock_anthropic.exchanges if e.request.method == "POST"]
    sub = [e for e in posts if e.request.header("x-claude-code-agent-id")]
    main = [e for e in posts if not e.request.header("x-claude-code-agent-id")]
    assert len(sub) == 1 and len(main) == 2, [e.request.headers for e in posts]
    assert "MARKER-REVIEWER-7f3a" in json.dumps(sub[0].request.json()["system"])

    stored = assert_capture_matches_mock(proxy, mock_anthropic)
    session_id = main[0].request.header("x-claude-code-session-id")
    sub_exchange = stored[sub[0].request_id]
    assert sub_exchange.agent_id == sub[0].request.header("x-claude-code-agent-id")
    assert sub_exchange.is_subagent
    assert sub_exchange.session_id == session_id
    for mock_exchange in main:
        exchange = stored[mock_exchange.request_id]
        assert exchange.session_id == session_id
        assert not exchange.is_subagent
    with proxy.db() as db:
        summary = db.get(CCSession, session_id)
        assert summary is not None and summary.subagent_request_count == 1
    first = stored[main[0].request_id]
    assert first.stop_reason == "tool_use"
    with proxy.db() as db:
        blob = db.get(Blob, first.response_message_hash)
        assert blob is not None
        call = json.loads(blob.json_text)["content"][-1]
    assert call["type"] == "tool_use" and call["name"] == "Agent"
    assert call["input"]["subagent_type"] == "code-reviewer"
