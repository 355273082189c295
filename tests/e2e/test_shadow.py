"""Shadow routing (issue 9, done-when 6) through a real mitmdump: a shadowed subagent is answered by the mock
Anthropic exactly as without shadowing, a copy of each of its requests goes to the mock OpenAI provider, the
shadow answers are stored per turn, and a shadow provider that hangs delays nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import select

from ccbridge.captured import CapturedExchange
from ccbridge.sse import assemble_message, parse_events
from ccbridge.storage.models import AlternateAnswer
from tests.support.builders import Conversation, text, user
from tests.support.mock_anthropic import MockAnthropic, delegating
from tests.support.mock_openai import MockOpenAI, Stall, chunk, text_chunks, usage
from tests.support.proxy import ProxyProcess, start_proxy

pytestmark = pytest.mark.e2e

PROMPT = "Review hello.py for problems. MARKER-SHADOW-PROMPT-5d1"
SUBAGENT_TEXT = "hello.py looks fine. CLAUDE-SUBAGENT-ANSWER-2a7"
SHADOW_TEXT = "The shadow model reviewed hello.py. SHADOW-ANSWER-9c4"
SESSION = "5e55a0de-0000-4000-8000-00000000c0de"
AGENT_ID = "a5e55a0de00000001"


@pytest.fixture
def mocks() -> Iterator[tuple[MockAnthropic, MockOpenAI]]:
    with MockAnthropic(delegating(PROMPT, SUBAGENT_TEXT, "All done.")) as claude, MockOpenAI() as provider:
        yield claude, provider


def start_shadowing(claude: MockAnthropic, provider: MockOpenAI, tmp_path: Any) -> ProxyProcess:
    return start_proxy(claude.url, tmp_path, config={
        "providers": {"mock": {"base_url": provider.base_url, "api_key": "sk-mock"}},
        "subagents": {"shadow": {"code-reviewer": "mock/gpt-mock"}},
        "routing": {"agent_dirs": [], "timeout": 60},
    })


def send(proxy: ProxyProcess, item: CapturedExchange) -> bytes:
    """POST a request as Claude Code sent it; the answer's bytes as the client received them."""
    headers = [(k, v) for k, v in item.request_headers if k.lower() not in ("host", "content-length")]
    with httpx.Client(timeout=30, trust_env=False) as client, client.stream(
            "POST", f"{proxy.url}/v1/messages?beta=true", headers=headers, content=item.request_body) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def delegate_and_run_subagent(proxy: ProxyProcess, turns: int) -> list[tuple[CapturedExchange, bytes]]:
    """The parent's turn that calls the code-reviewer agent, then `turns` turns of that subagent."""
    clock = [time.time()]
    parent = Conversation(SESSION, clock)
    send(proxy, parent.turn([user("Please review hello.py.")], [text("(answered by the mock)")]))
    subagent = Conversation(SESSION, clock, agent_id=AGENT_ID, system="You are a meticulous code reviewer.")
    sent = []
    for n in range(turns):
        item = subagent.turn([user(PROMPT if n == 0 else f"And line {n}?")], [text(SUBAGENT_TEXT)])
        sent.append((item, send(proxy, item)))
    return sent


def answer_text(stream: bytes) -> str:
    message = assemble_message(parse_events(stream)).message or {}
    return "".join(b.get("text", "") for b in message.get("content", []))


def arrived(mock: MockOpenAI, count: int, timeout: float = 20.0) -> list[Any]:
    """The mock's exchanges once `count` requests have arrived (answered or not)."""
    deadline = time.monotonic() + timeout
    while len(mock.exchanges) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return mock.exchanges


def shadow_rows(proxy: ProxyProcess, count: int, timeout: float = 30.0) -> list[AlternateAnswer]:
    """The shadow answers once `count` are stored (the journal's writer commits in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        with proxy.db() as db:
            rows = list(db.exec(select(AlternateAnswer).where(AlternateAnswer.kind == "shadow")
                                .order_by(AlternateAnswer.id)).all())
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_a_shadowed_agent_is_answered_by_claude_untouched_and_each_turn_is_shadowed(
        mocks: tuple[MockAnthropic, MockOpenAI], tmp_path: Any) -> None:
    claude, provider = mocks
    provider.script = [*text_chunks(SHADOW_TEXT), chunk(finish_reason="stop", usage=usage(40, 11))]
    with start_shadowing(claude, provider, tmp_path) as proxy:
        sent = delegate_and_run_subagent(proxy, turns=2)
        rows = shadow_rows(proxy, 2)
        assert proxy.stop() == 0

    subagent_exchanges = [e for e in claude.exchanges if e.request.header("x-claude-code-agent-id") == AGENT_ID]
    assert len(subagent_exchanges) == 2, "the shadowed agent stays on Claude"
    for (item, received), exchange in zip(sent, subagent_exchanges, strict=True):
        assert exchange.request.body == item.request_body, "the request reached Anthropic unchanged"
        assert not [k for k, _ in exchange.request.headers if k.lower().startswith("x-ccbridge")]
        assert received == exchange.response_body, "the client got Anthropic's answer byte for byte"
        assert answer_text(received) == SUBAGENT_TEXT

    copies = provider.chat_requests
    assert len(copies) == 2 and all(c["model"] == "gpt-mock" for c in copies)
    assert PROMPT in str(copies[0]["messages"]) and "And line 1?" in str(copies[1]["messages"])
    assert len(claude.exchanges) == 3, "only the parent's turn and the subagent's two reached Anthropic"

    stored = {e.flow_id: e for e in proxy.exchanges() if e.agent_id == AGENT_ID}
    assert len(stored) == 2 and not any(e.routed for e in stored.values())
    assert len(rows) == 2
    assert {r.exchange_id for r in rows} == {e.id for e in stored.values()}, "one shadow answer per turn"
    for row in rows:
        assert (row.provider, row.model, row.error) == ("mock", "gpt-mock", None)
        assert row.answer is not None and row.answer["content"][0]["text"] == SHADOW_TEXT
        assert (row.input_tokens, row.output_tokens) == (40, 11) and row.ttfb_ms is not None


def test_a_shadow_provider_that_hangs_delays_nothing(mocks: tuple[MockAnthropic, MockOpenAI], tmp_path: Any) -> None:
    claude, provider = mocks
    provider.script = [Stall()]  # takes the request and never answers while the test runs
    with start_shadowing(claude, provider, tmp_path) as proxy:
        [(item, received)] = delegate_and_run_subagent(proxy, turns=1)
        # the client has its whole answer; only now is the shadow request looked at: still held open
        [held] = arrived(provider, 1)
        assert not held.finished, "the shadow provider still holds its request"
        answered = claude.exchanges[-1]
        assert answered.request.body == item.request_body
        assert received == answered.response_body and answer_text(received) == SUBAGENT_TEXT
        assert proxy.stop() == 0
    assert [e.agent_id for e in proxy.exchanges()].count(AGENT_ID) == 1
