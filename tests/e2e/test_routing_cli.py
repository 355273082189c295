"""The real Claude Code CLI through real mitmdump, with the `code-reviewer` subagent routed to a mock OpenAI server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.claude_cli import agent_markdown, run_claude
from tests.support.mock_anthropic import (
    MockAnthropic,
    MockRequest,
    Reply,
    delegating,
)
from tests.support.mock_openai import MockOpenAI, answer, chunk, text_chunks, tool_call, usage
from tests.support.proxy import ProxyProcess, start_proxy

pytestmark = pytest.mark.e2e

OPENAI_TEXT = "Review complete: hello.py prints hello and is fine. MOCK-OPENAI-ANSWER-5d1e"
FINAL_TEXT = "The code-reviewer subagent finished. MOCK-FINAL-ANSWER"
FILE_TEXT = "print('hello')  # FILE-MARKER-c0ffee\n"
REVIEWER = agent_markdown("code-reviewer", "Reviews code for problems. Use it after writing code.",
                          "You are a meticulous code reviewer. MARKER-REVIEWER-7f3a")
PARENT_PROMPT = "Please review the file hello.py and report any issues. MARKER-PARENT-PROMPT-91c2"


# a subagent request reaching Anthropic would get this answer: routing failed
main_thread = delegating(PARENT_PROMPT, "MOCK-ANTHROPIC-ANSWERED-A-SUBAGENT (routing failed)", FINAL_TEXT)


def text_answer(request: MockRequest) -> Reply:
    return answer(request, [*text_chunks(OPENAI_TEXT), chunk(finish_reason="stop", usage=usage(900, 20))])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The CLI's project folder (run_claude uses tmp_path/claude-project)."""
    folder = tmp_path / "claude-project"
    folder.mkdir()
    return folder


@pytest.fixture
def mock_openai() -> Iterator[MockOpenAI]:
    with MockOpenAI() as mock:
        yield mock


@pytest.fixture
def routed_proxy(mock_anthropic: MockAnthropic, mock_openai: MockOpenAI, project: Path,
                 tmp_path: Path) -> Iterator[ProxyProcess]:
    config = {
        "providers": {"mockai": {"base_url": mock_openai.base_url, "api_key": "sk-mock-openai"}},
        "subagents": {"enable": True, "default_provider": "mockai", "mappings": {"code-reviewer": "gpt-mock"}},
        # the agent's own folder: rule 2 could recognise it, so a route by rule 1 proves rule 1 worked
        "routing": {"agent_dirs": [str(project / ".claude" / "agents")]},
    }
    with start_proxy(mock_anthropic.url, tmp_path, config) as proxy:
        yield proxy


def anthropic_posts(mock: MockAnthropic) -> list[MockRequest]:
    return [r for r in mock.requests if r.method == "POST" and r.path == "/v1/messages"]


def tool_results(body: dict[str, Any]) -> list[str]:
    texts = []
    for message in body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result":
                content = block.get("content")
                texts.append(content if isinstance(content, str) else json.dumps(content))
    return texts


def test_subagent_is_answered_by_the_provider(mock_anthropic: MockAnthropic, mock_openai: MockOpenAI,
                                              routed_proxy: ProxyProcess, tmp_path: Path) -> None:
    mock_anthropic.handler = main_thread
    mock_openai.handler = text_answer
    result = run_claude("Review hello.py with the code-reviewer agent.", routed_proxy.url, tmp_path=tmp_path,
                        agents={"code-reviewer": REVIEWER}, files={"hello.py": FILE_TEXT})

    assert result.returncode == 0, result.stderr + routed_proxy.log_tail()
    assert FINAL_TEXT in result.stdout
    posts = anthropic_posts(mock_anthropic)
    assert not [r for r in posts if r.header("x-claude-code-agent-id")], "a subagent request reached Anthropic"
    assert len(posts) == 2  # the main thread: the Agent call, then the turn with its result
    sent = mock_openai.chat_requests
    assert len(sent) == 1 and sent[0]["model"] == "gpt-mock" and sent[0]["stream"] is True
    assert PARENT_PROMPT in json.dumps(sent[0]["messages"])
    assert "MARKER-REVIEWER-7f3a" in sent[0]["messages"][0]["content"]  # the agent's system prompt
    assert any(OPENAI_TEXT in text for text in tool_results(posts[1].json()))

    assert routed_proxy.stop() == 0
    routed = [e for e in routed_proxy.exchanges() if e.routed]
    assert len(routed) == 1
    route = routed[0].route or {}
    assert route["rule"] == "agent_call" and route["agent"] == "code-reviewer"
    assert route["provider"] == "mockai" and route["model"] == "gpt-mock"
    assert routed[0].agent_id and routed[0].is_subagent and routed[0].stop_reason == "end_turn"


def test_the_provider_runs_the_agents_read_tool(mock_anthropic: MockAnthropic, mock_openai: MockOpenAI,
                                                 routed_proxy: ProxyProcess, project: Path,
                                                 tmp_path: Path) -> None:
    target = str(project / "hello.py")

    def read_then_answer(request: MockRequest) -> Reply:
        body = request.json()
        if any(m["role"] == "tool" for m in body["messages"]):
            return text_answer(request)
        return answer(request, [
            chunk({"role": "assistant", "content": "Let me read it."}),
            chunk({"tool_calls": [tool_call(0, call_id="call_read1", name="Read", arguments="")]}),
            chunk({"tool_calls": [tool_call(0, arguments=json.dumps({"file_path": target}))]}),
            chunk(finish_reason="tool_calls", usage=usage(800, 30)),
        ])

    mock_anthropic.handler = main_thread
    mock_openai.handler = read_then_answer
    result = run_claude("Review hello.py with the code-reviewer agent.", routed_proxy.url, tmp_path=tmp_path,
                        agents={"code-reviewer": REVIEWER}, files={"hello.py": FILE_TEXT})

    assert result.returncode == 0, result.stderr + routed_proxy.log_tail()
    assert FINAL_TEXT in result.stdout
    assert not [r for r in anthropic_posts(mock_anthropic) if r.header("x-claude-code-agent-id")]
    sent = mock_openai.chat_requests
    assert len(sent) == 2, [m["role"] for body in sent for m in body["messages"]]
    first_tools = {t["function"]["name"] for t in sent[0]["tools"]}
    assert "Read" in first_tools
    calls = [m for m in sent[1]["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert calls and calls[-1]["tool_calls"][0]["id"] == "call_read1"
    results = [m for m in sent[1]["messages"] if m["role"] == "tool"]
    assert len(results) == 1 and results[0]["tool_call_id"] == "call_read1"
    assert "FILE-MARKER-c0ffee" in json.dumps(results[0]["content"])
    assert any(OPENAI_TEXT in text for text in tool_results(anthropic_posts(mock_anthropic)[-1].json()))

    assert routed_proxy.stop() == 0
    routed = [e for e in routed_proxy.exchanges() if e.routed]
    assert [e.stop_reason for e in routed] == ["tool_use", "end_turn"]
    assert len({e.agent_id for e in routed}) == 1  # one subagent, both turns of its tool loop routed
    assert all((e.route or {}).get("rule") == "agent_call" for e in routed)


def test_a_config_with_only_an_ollama_provider_runs_a_read_grep_answer_loop(
        mock_anthropic: MockAnthropic, mock_openai: MockOpenAI, project: Path, tmp_path: Path) -> None:
    """The plain config a new user writes for a local model: one provider, one mapping, nothing else."""
    target = str(project / "hello.py")

    def read_grep_answer(request: MockRequest) -> Reply:
        done = [m for m in request.json()["messages"] if m["role"] == "tool"]
        if not done:
            call = tool_call(0, call_id="call_read1", name="Read", arguments=json.dumps({"file_path": target}))
            return answer(request, [chunk({"tool_calls": [call]}), chunk(finish_reason="tool_calls",
                                                                         usage=usage(800, 30))])
        if len(done) == 1:
            grep = {"pattern": "FILE-MARKER", "path": str(project)}
            call = tool_call(0, call_id="call_grep1", name="Grep", arguments=json.dumps(grep))
            return answer(request, [chunk({"tool_calls": [call]}), chunk(finish_reason="tool_calls",
                                                                         usage=usage(900, 20))])
        return text_answer(request)

    mock_anthropic.handler = main_thread
    mock_openai.handler = read_grep_answer
    config = {"providers": {"ollama": {"base_url": mock_openai.base_url, "api_key": "ollama"}},
              "subagents": {"mappings": {"code-reviewer": "qwen3:8b"}}}
    with start_proxy(mock_anthropic.url, tmp_path, config) as proxy:
        result = run_claude("Review hello.py with the code-reviewer agent.", proxy.url, tmp_path=tmp_path,
                            agents={"code-reviewer": REVIEWER}, files={"hello.py": FILE_TEXT})
        assert result.returncode == 0, result.stderr + proxy.log_tail()
        assert "openai" not in proxy.log().lower().replace("openai-compatible", "")
        assert proxy.stop() == 0
        routed = [e for e in proxy.exchanges() if e.routed]

    assert FINAL_TEXT in result.stdout
    assert not [r for r in anthropic_posts(mock_anthropic) if r.header("x-claude-code-agent-id")]
    sent = mock_openai.chat_requests
    assert [body["model"] for body in sent] == ["qwen3:8b"] * 3
    tool_messages = [m for m in sent[2]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_read1", "call_grep1"]
    assert "FILE-MARKER-c0ffee" in json.dumps(tool_messages[0]["content"])
    assert "hello.py" in json.dumps(tool_messages[1]["content"])
    assert [e.stop_reason for e in routed] == ["tool_use", "tool_use", "end_turn"]
    assert all((e.route or {}).get("provider") == "ollama" for e in routed)
