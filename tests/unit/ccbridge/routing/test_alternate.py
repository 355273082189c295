"""`alternate.ask`: a recorded request answered by another route, against the tests' mock servers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccbridge.errors import ConfigError
from ccbridge.prices import Tokens, cost_usd
from ccbridge.routes import Provider, Route
from ccbridge.routing.alternate import anthropic_provider, ask, resolve_target
from ccbridge.settings import parse_settings
from ccbridge.translate import capabilities_for
from tests.support import mock_responses
from tests.support.mock_anthropic import MOCK_TEXT, MockAnthropic
from tests.support.mock_openai import MockOpenAI, chunk, error_reply, text_chunks, tool_call, usage

BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": True,
    "system": [{"type": "text", "text": "You are a reviewer."}],
    "tools": [{"name": "Read", "description": "Read a file.",
               "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Review hello.py"}]}],
}


def provider(base_url: str, *, kind: str = "openai-compatible", api: str = "chat") -> Provider:
    return Provider(name="mock", base_url=base_url, kind=kind, api_key="sk-mock", api=api)


async def ask_mock(p: Provider, model: str = "gpt-mock") -> dict[str, Any]:
    return await ask(BODY, Route("mock", model), p, capabilities_for(p.name, p.kind, model, {}), timeout=10)


async def test_a_chat_provider_answers_with_text_a_tool_call_and_tokens() -> None:
    with MockOpenAI() as server:
        server.script = [*text_chunks("Looks fine; ", "let me read it."),
                         chunk({"tool_calls": [tool_call(0, call_id="call_1", name="Read",
                                                         arguments='{"file_path": "hello.py"}')]}),
                         chunk(finish_reason="tool_calls", usage=usage(120, 30, cached=20))]
        result = await ask_mock(provider(server.base_url))
        sent = server.chat_requests[0]
    assert result["error"] is None
    assert sent["model"] == "gpt-mock" and sent["stream"] is True
    assert result["request"]["messages"] == sent["messages"]  # what was sent is what is stored
    answer = result["answer"]
    assert [b["type"] for b in answer["content"]] == ["text", "tool_use"]
    assert answer["content"][0]["text"] == "Looks fine; let me read it."
    assert answer["content"][1]["name"] == "Read" and answer["content"][1]["input"] == {"file_path": "hello.py"}
    assert answer["stop_reason"] == "tool_use"
    assert (result["input_tokens"], result["cache_read_tokens"], result["output_tokens"]) == (100, 20, 30)
    assert b"call_1" in result["raw_response"]  # the provider's own chunks
    assert result["ttfb_ms"] is not None and result["duration_ms"] is not None
    assert (result["provider"], result["model"], result["api"]) == ("mock", "gpt-mock", "chat")


async def test_a_known_model_is_priced_with_genai_prices() -> None:
    with MockOpenAI() as server:
        server.script = [*text_chunks("ok"), chunk(finish_reason="stop", usage=usage(1000, 500))]
        result = await ask_mock(provider(server.base_url, kind="openai"), model="gpt-4o")
    expected = cost_usd("openai", "gpt-4o", Tokens(input=1000, output=500))
    assert expected is not None and expected > 0
    assert result["cost_usd"] == pytest.approx(float(expected))


async def test_an_unknown_model_has_no_price() -> None:
    with MockOpenAI() as server:
        result = await ask_mock(provider(server.base_url))
    assert result["answer"]["content"][0]["text"] == "Hello from the mock OpenAI server."
    assert result["cost_usd"] is None


async def test_a_responses_provider_is_asked_through_the_responses_api() -> None:
    with mock_responses.MockResponses() as server:
        server.script = mock_responses.events(
            mock_responses.message("The file ", "is fine."),
            mock_responses.function_call("call_9", "Read", '{"file_path": ', '"hello.py"}'),
            usage=mock_responses.usage(200, 40))
        result = await ask_mock(provider(server.base_url, api="responses"))
        sent = server.responses_requests[0]
    assert result["error"] is None and result["api"] == "responses"
    assert sent["stream"] is True and "input" in sent
    content = result["answer"]["content"]
    assert content[0] == {"type": "text", "text": "The file is fine."}
    assert content[1]["name"] == "Read" and content[1]["input"] == {"file_path": "hello.py"}
    assert (result["input_tokens"], result["output_tokens"]) == (200, 40)


async def test_a_provider_error_is_stored_not_raised() -> None:
    with MockOpenAI(lambda request: error_reply(404, "The model `gpt-nope` does not exist")) as server:
        result = await ask_mock(provider(server.base_url), model="gpt-nope")
    assert result["answer"] is None and result["cost_usd"] is None
    assert "404" in result["error"] and "gpt-nope" in result["error"]
    assert b"does not exist" in result["raw_response"]


async def test_an_anthropic_route_sends_the_original_body_with_the_model_replaced() -> None:
    with MockAnthropic() as server:
        target = anthropic_provider({"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": server.url})
        result = await ask(BODY, Route("anthropic", "claude-haiku-4-5"), target, None, timeout=10,
                           anthropic_beta="claude-code-20250219")
        received = server.requests[0]
    sent = json.loads(received.body)
    assert sent["model"] == "claude-haiku-4-5" and sent["messages"] == BODY["messages"]
    assert sent["tools"] == BODY["tools"] and sent["system"] == BODY["system"]
    assert received.header("x-api-key") == "sk-ant-test"
    assert received.header("anthropic-beta") == "claude-code-20250219"
    assert result["error"] is None and result["api"] == "messages"
    assert result["answer"]["content"] == [{"type": "text", "text": MOCK_TEXT}]
    assert result["input_tokens"] is not None and result["output_tokens"]


def test_an_anthropic_route_needs_the_key() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        anthropic_provider({})


ROUTING = parse_settings({
    "providers": {"mock": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-mock"},
                  "keyed": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "KEYED_KEY"}},
}, env={}, check_keys=False).routing


def test_routes_name_a_configured_provider_or_anthropic() -> None:
    target = resolve_target("mock/gpt-mock-2", ROUTING, {})
    assert (target.route, target.provider.name, target.label) == (Route("mock", "gpt-mock-2"), "mock",
                                                                  "mock/gpt-mock-2")
    assert target.capabilities is not None
    model_with_slash = resolve_target("mock/openai/gpt-4o", ROUTING, {})
    assert model_with_slash.route.model == "openai/gpt-4o"
    anthropic = resolve_target("anthropic/claude-haiku-4-5", ROUTING, {"ANTHROPIC_API_KEY": "k"})
    assert anthropic.provider.api == "messages" and anthropic.provider.base_url == "https://api.anthropic.com"


@pytest.mark.parametrize(("text", "message"), [
    ("gpt-mock", "PROVIDER/MODEL"),
    ("nope/gpt-mock", "unknown provider 'nope'"),
    ("keyed/gpt-mock", "KEYED_KEY is not set"),
    ("anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
])
def test_a_route_that_cannot_be_asked_says_why(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_target(text, ROUTING, {})
