"""Routing fidelity through real mitmdump and the `anthropic` SDK: what a gpt-5-mini provider gets and what the
client gets back (long tool names, stop sequences, structured output), count_tokens answered locally, the
wording of a mid-stream failure, and `routing.listen_port`.

Requests for `claude-routed-*` go (rule `model`) to a mock OpenAI provider declared `kind: openai`, so the
capability table's gpt-5-mini entry applies.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.conftest import require_tool
from tests.e2e.test_routing_sdk import start_mitmdump_expecting_failure
from tests.support.mock_anthropic import MockAnthropic, MockRequest, Reply
from tests.support.mock_openai import (
    MockOpenAI,
    answer,
    chunk,
    closed_port,
    error_chunk,
    error_reply,
    text_chunks,
    tool_call,
    usage,
)
from tests.support.proxy import ProxyProcess, mitmdump_bin, start_proxy

pytestmark = pytest.mark.e2e

MODEL = "claude-routed-haiku"
LONG_TOOL = "mcp__claude_ai_Company_Knowledge_Base__search_documents_by_semantic_similarity_with_filter"
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["approve", "reject"]}, "reason": {"type": "string"}},
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}


def provider(request: MockRequest) -> Reply:
    """Call the first tool offered, by the name the provider was given; or fail mid-stream when asked to."""
    body = request.json()
    last = body["messages"][-1]["content"]
    if isinstance(last, str) and last == "break off":
        return answer(request, [*text_chunks("Partial"), error_chunk("the model crashed MOCK-MIDSTREAM")])
    if not body.get("tools"):
        return error_reply(400, "this mock expects tools")
    name = body["tools"][0]["function"]["name"]
    return answer(request, [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [tool_call(0, call_id="call_1", name=name, arguments='{"query":')]}),
        chunk({"tool_calls": [tool_call(0, arguments='"release notes"}')]}),
        chunk(finish_reason="tool_calls", usage=usage(120, 15)),
    ])


@pytest.fixture(scope="module")
def mocks() -> Iterator[tuple[MockAnthropic, MockOpenAI]]:
    with MockAnthropic() as upstream, MockOpenAI(provider) as openai_mock:
        yield upstream, openai_mock


@pytest.fixture(scope="module")
def listen_port() -> int:
    return closed_port()


@pytest.fixture(scope="module")
def routed(mocks: tuple[MockAnthropic, MockOpenAI], listen_port: int,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    require_tool(mitmdump_bin(), "run `make venv`")
    config = {
        "providers": {"mockai": {"base_url": mocks[1].base_url, "api_key": "sk-mock-openai", "kind": "openai"}},
        "models": {"claude-routed-*": {"provider": "mockai", "model": "gpt-5-mini"}},
        "routing": {"agent_dirs": [], "listen_port": listen_port},
    }
    with start_proxy(mocks[0].url, tmp_path_factory.mktemp("fidelity"), config) as proxy:
        yield proxy




def long_tool_request() -> dict[str, Any]:
    """A turn after an earlier call of the long-named tool, with stop sequences and structured output."""
    return {
        "model": MODEL,
        "max_tokens": 2000,
        "tools": [{"name": LONG_TOOL, "description": "Search the knowledge base",
                   "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}},
                  {"name": "Read", "input_schema": {"type": "object",
                                                    "properties": {"file_path": {"type": "string"}}}}],
        "stop_sequences": ["</review>"],
        "messages": [
            {"role": "user", "content": "Search the docs."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": LONG_TOOL,
                                               "input": {"query": "changelog"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "nothing"},
                                         {"type": "text", "text": "Try again."}]},
        ],
        "extra_body": {"output_format": {"type": "json_schema", "schema": VERDICT_SCHEMA}},
    }


def check_provider_request(sent: dict[str, Any]) -> None:
    short = sent["tools"][0]["function"]["name"]
    assert len(short) <= 64 and short != LONG_TOOL
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == short  # the history uses it too
    assert LONG_TOOL not in json.dumps(sent)
    assert "stop" not in sent  # gpt-5-mini answers `stop` with 400 "Unsupported parameter"
    assert sent["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "structured_output", "schema": VERDICT_SCHEMA, "strict": True},
    }


def test_long_tool_name_stop_and_structured_output_to_gpt_5_mini_streamed(
        client: anthropic.Anthropic, mocks: tuple[MockAnthropic, MockOpenAI]) -> None:
    with client.messages.stream(**long_tool_request()) as stream:
        message = stream.get_final_message()
    check_provider_request(mocks[1].chat_requests[-1])
    assert [(b.type, getattr(b, "name", None)) for b in message.content] == [("tool_use", LONG_TOOL)]
    assert message.content[0].input == {"query": "release notes"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


def test_long_tool_name_stop_and_structured_output_to_gpt_5_mini_not_streamed(
        client: anthropic.Anthropic, mocks: tuple[MockAnthropic, MockOpenAI]) -> None:
    message = client.messages.create(**long_tool_request())
    sent = mocks[1].chat_requests[-1]
    assert "stream" not in sent
    check_provider_request(sent)
    assert [(b.type, getattr(b, "name", None)) for b in message.content] == [("tool_use", LONG_TOOL)]


def test_count_tokens_for_a_routed_model_never_reaches_anthropic(
        client: anthropic.Anthropic, mocks: tuple[MockAnthropic, MockOpenAI]) -> None:
    upstream, openai_mock = mocks
    before = len(openai_mock.requests)
    request = long_tool_request()
    for key in ("max_tokens", "stop_sequences", "extra_body"):
        request.pop(key)
    counted = client.messages.count_tokens(**request)
    assert counted.input_tokens > 50
    assert not [r for r in upstream.requests if r.path == "/v1/messages/count_tokens"]
    assert len(openai_mock.requests) == before  # estimated, not asked of the provider
    # a model that is not routed is still counted by Anthropic: the check above can fail
    client.messages.count_tokens(model="claude-opus-4-1", messages=[{"role": "user", "content": "hi"}])
    assert [r.path for r in upstream.requests].count("/v1/messages/count_tokens") == 1


def test_a_provider_failure_mid_stream_says_the_stream_broke_off(client: anthropic.Anthropic) -> None:
    received: list[str] = []
    request = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "break off"}]}
    with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(**request) as stream:
        received.extend(stream.text_stream)
    assert "".join(received) == "Partial"
    assert isinstance(caught.value.body, dict)
    message = caught.value.body["error"]["message"]
    assert "broke off" in message and "MOCK-MIDSTREAM" in message and "could not reach" not in message


def test_the_routing_server_listens_on_routing_listen_port(routed: ProxyProcess, listen_port: int) -> None:
    with socket.create_connection(("127.0.0.1", listen_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 404")  # the routing server: no routed request has an empty token


def test_a_taken_listen_port_stops_start_up_with_a_message_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = {
            "providers": {"mockai": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-mock"}},
            "models": {"claude-routed-*": {"provider": "mockai", "model": "gpt-mock"}},
            "routing": {"agent_dirs": [], "listen_port": port},
        }
        code, output = start_mitmdump_expecting_failure(tmp_path, config, {})
    assert code != 0, output
    assert f"cannot listen on 127.0.0.1:{port} (routing.listen_port)" in output
