"""Routed answers read back with the official `anthropic` SDK through real mitmdump.

Requests for `claude-routed-*` are routed (rule `model`) to a mock OpenAI server, which answers with the
scenario named in the user message; `claude-dead-*` goes to a provider nothing listens on.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import yaml

from ccbridge.storage.read import load_raw, request_headers
from ccbridge.translate import estimate_prompt_tokens
from tests.conftest import require_tool
from tests.support.mock_anthropic import MOCK_TEXT, MockAnthropic, MockRequest, Reply
from tests.support.mock_openai import (
    ChunkItem,
    Cut,
    MockOpenAI,
    Pause,
    Stall,
    answer,
    chunk,
    closed_port,
    error_chunk,
    error_reply,
    text_chunks,
    tool_call,
    usage,
)
from tests.support.proxy import ADDON, ProxyProcess, header, mitmdump_bin, start_proxy
from tests.support.routed import API_KEY, ask, sdk

pytestmark = pytest.mark.e2e

PING_INTERVAL = 0.3


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def tokens(input_tokens: int, output_tokens: int, cache_read: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": 0}


# name -> (what the provider streams, the content, stop_reason and usage Claude Code must get)
SCENARIOS: dict[str, tuple[list[ChunkItem], list[dict[str, Any]], str, dict[str, int] | None]] = {
    "plain_text": (
        [*text_chunks("Hello", ", ", "world."), chunk(finish_reason="stop", usage=usage(20, 5))],
        [text("Hello, world.")], "end_turn", tokens(20, 5),
    ),
    "text_then_two_parallel_tool_calls": (
        [chunk({"role": "assistant", "content": ""}), chunk({"content": "Checking both files."}),
         chunk({"tool_calls": [tool_call(0, call_id="call_a", name="Read", arguments="")]}),
         chunk({"tool_calls": [tool_call(0, arguments='{"file_path":"/a"}')]}),
         chunk({"tool_calls": [tool_call(1, call_id="call_b", name="Read", arguments='{"file_path":"/b"}')]}),
         chunk(finish_reason="tool_calls"),
         chunk(choices=False, usage=usage(9000, 60, cached=8000))],
        [text("Checking both files."), tool_use("call_a", "Read", {"file_path": "/a"}),
         tool_use("call_b", "Read", {"file_path": "/b"})], "tool_use", tokens(1000, 60, cache_read=8000),
    ),
    "interleaved_tool_call_deltas": (
        [chunk({"role": "assistant", "tool_calls": [tool_call(0, call_id="call_1", name="Read", arguments="")]}),
         chunk({"tool_calls": [tool_call(1, call_id="call_2", name="Grep", arguments="")]}),
         chunk({"tool_calls": [tool_call(0, arguments='{"file_pa')]}),
         chunk({"tool_calls": [tool_call(1, arguments='{"pattern":')]}),
         chunk({"tool_calls": [tool_call(0, arguments='th":"/x.py"}')]}),
         chunk({"tool_calls": [tool_call(1, arguments='"TODO"}')]}),
         chunk(finish_reason="tool_calls", usage=usage(300, 40))],
        [tool_use("call_1", "Read", {"file_path": "/x.py"}), tool_use("call_2", "Grep", {"pattern": "TODO"})],
        "tool_use", tokens(300, 40),
    ),
    "all_calls_at_index_0": (
        [chunk({"role": "assistant", "content": None}),
         chunk({"tool_calls": [tool_call(0, call_id="call_x", name="Read", arguments='{"file_path":"/1"}')]}),
         chunk({"tool_calls": [tool_call(0, call_id="call_y", name="Read", arguments='{"file_path":')]}),
         chunk({"tool_calls": [tool_call(0, arguments='"/2"}')]}),
         chunk(finish_reason="tool_calls", usage=usage(100, 10))],
        [tool_use("call_x", "Read", {"file_path": "/1"}), tool_use("call_y", "Read", {"file_path": "/2"})],
        "tool_use", tokens(100, 10),
    ),
    "usage_only_final_chunk": (
        [*text_chunks("Short answer."), chunk(finish_reason="stop"),
         chunk(choices=False, usage=usage(1234, 56, cached=1000))],
        [text("Short answer.")], "end_turn", tokens(234, 56, cache_read=1000),
    ),
    "reasoning_content": (
        [chunk({"role": "assistant", "reasoning_content": "Let me think"}), chunk({"reasoning_content": " hard."}),
         chunk({"content": "The answer is 4."}), chunk(finish_reason="stop", usage=usage(50, 30))],
        [{"type": "thinking", "thinking": "Let me think hard."}, text("The answer is 4.")], "end_turn",
        tokens(50, 30),
    ),
    "no_usage_at_all": (
        [*text_chunks("No usage from this server, twenty-eight chars"), chunk(finish_reason="stop")],
        [text("No usage from this server, twenty-eight chars")], "end_turn", None,  # estimated: see the test
    ),
    "silent_longer_than_the_ping_interval": (
        [chunk({"role": "assistant", "content": ""}), Pause(PING_INTERVAL * 4), chunk({"content": "Finally."}),
         chunk(finish_reason="stop", usage=usage(10, 2))],
        [text("Finally.")], "end_turn", tokens(10, 2),
    ),
}
MID_STREAM = {
    "error_chunk": [*text_chunks("Partial"), error_chunk("the model crashed MOCK-MIDSTREAM")],
    "connection_cut": [*text_chunks("Partial"), Cut()],
}
# provider status -> (status Claude Code gets, error type)
STATUS_ERRORS = {400: (400, "invalid_request_error"), 401: (502, "api_error"), 403: (502, "api_error"),
                 404: (404, "not_found_error"), 429: (429, "rate_limit_error"), 500: (500, "api_error"),
                 503: (529, "overloaded_error")}


def scenario_of(request: MockRequest) -> str:
    body = request.json()
    last = body["messages"][-1]["content"]
    return (last if isinstance(last, str) else last[0]["text"]).removeprefix("scenario: ")


def provider(request: MockRequest) -> Reply:
    name = scenario_of(request)
    if name in SCENARIOS:
        return answer(request, SCENARIOS[name][0])
    if name in MID_STREAM:
        return answer(request, MID_STREAM[name])
    if name.startswith("status_"):
        status = int(name.removeprefix("status_"))
        headers = [("retry-after", "7")] if status == 429 else []
        return error_reply(status, f"mock provider says {status}", headers=headers)
    if name == "stall":
        return answer(request, [chunk({"role": "assistant", "content": ""}), Stall(20)])
    return error_reply(400, f"unknown scenario {name!r}")


@pytest.fixture(scope="module")
def mocks() -> Iterator[tuple[MockAnthropic, MockOpenAI]]:
    with MockAnthropic() as upstream, MockOpenAI(provider) as openai_mock:
        yield upstream, openai_mock


def routing_config(openai_mock: MockOpenAI) -> dict[str, Any]:
    return {
        "providers": {
            "mockai": {"base_url": openai_mock.base_url, "api_key": "sk-mock-openai"},
            "deadai": {"base_url": f"http://127.0.0.1:{closed_port()}/v1", "api_key": "sk-dead"},
        },
        "subagents": {"default_provider": "mockai"},
        "models": {
            "claude-routed-*": {"provider": "mockai", "model": "gpt-mock"},
            "claude-fallback-*": {"provider": "mockai", "model": "gpt-mock", "fallback": "anthropic"},
            "claude-dead-*": {"provider": "deadai", "model": "gpt-dead"},
        },
        "routing": {"ping_interval": PING_INTERVAL, "agent_dirs": []},
    }


@pytest.fixture(scope="module")
def routed(mocks: tuple[MockAnthropic, MockOpenAI], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    require_tool(mitmdump_bin(), "run `make venv`")
    with start_proxy(mocks[0].url, tmp_path_factory.mktemp("routed"), routing_config(mocks[1])) as proxy:
        yield proxy






def essence(message: anthropic.types.Message) -> dict[str, Any]:
    """What Claude Code acts on; thinking signatures only checked for being ccbridge's."""
    data = message.model_dump()
    content = []
    for block in data["content"]:
        if block["type"] == "thinking":
            assert block["signature"].startswith("ccbridge:")
            content.append({"type": "thinking", "thinking": block["thinking"]})
        elif block["type"] == "text":
            content.append(text(block["text"]))
        else:
            content.append(tool_use(block["id"], block["name"], block["input"]))
    usage_fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return {"model": data["model"], "role": data["role"], "content": content, "stop_reason": data["stop_reason"],
            "stop_sequence": data["stop_sequence"], "usage": {k: data["usage"][k] for k in usage_fields}}


def expected(name: str, openai_mock: MockOpenAI) -> dict[str, Any]:
    _, content, stop_reason, usage_expected = SCENARIOS[name]
    if usage_expected is None:  # no usage from the server: estimated from the request and the answer
        sent = openai_mock.chat_requests[-1]
        chars = sum(len(b.get("text", "")) for b in content)
        usage_expected = tokens(estimate_prompt_tokens(sent), max(1, chars // 4))
    return {"model": "claude-routed-test", "role": "assistant", "content": content, "stop_reason": stop_reason,
            "stop_sequence": None, "usage": usage_expected}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_streamed_answer(name: str, client: anthropic.Anthropic, mocks: tuple[MockAnthropic, MockOpenAI]) -> None:
    with client.messages.stream(**ask(name)) as stream:
        message = stream.get_final_message()
    assert essence(message) == expected(name, mocks[1])
    assert message.id.startswith("msg_")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_non_streaming_gives_the_same_message(name: str, client: anthropic.Anthropic,
                                              mocks: tuple[MockAnthropic, MockOpenAI]) -> None:
    with client.messages.stream(**ask(name)) as stream:
        streamed = essence(stream.get_final_message())
    whole = client.messages.create(**ask(name))
    sent = mocks[1].chat_requests[-1]
    assert "stream" not in sent  # the provider was asked for one completion
    assert essence(whole) == streamed


def test_pings_while_the_provider_is_silent(routed: ProxyProcess) -> None:
    body = {**ask("silent_longer_than_the_ping_interval"), "stream": True}
    events: list[tuple[float, str]] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{routed.url}/v1/messages", json=body, headers={"x-api-key": API_KEY},
                      timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append((time.monotonic() - started, line.removeprefix("event: ")))
    names = [name for _, name in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    pings = [at for at, name in events if name == "ping"]
    assert len(pings) >= 2, events
    first_text = next(at for at, name in events if name == "content_block_start")
    assert all(at < first_text for at in pings)


@pytest.mark.parametrize("status", list(STATUS_ERRORS))
def test_provider_error_before_the_first_byte(status: int, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(**ask(f"status_{status}")):
        pass
    expected_status, error_type = STATUS_ERRORS[status]
    error = caught.value
    assert error.status_code == expected_status
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.body["error"]["type"] == error_type
    assert f"mock provider says {status}" in error.body["error"]["message"]
    assert "mockai" in error.body["error"]["message"]  # not mistaken for Anthropic's own answer
    if status == 429:
        assert error.response.headers["retry-after"] == "7"


def test_unreachable_provider(client: anthropic.Anthropic) -> None:
    with (pytest.raises(anthropic.APIStatusError) as caught,
          client.messages.stream(**ask("plain_text", model="claude-dead-test"))):
        pass
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "api_error"
    assert "could not reach deadai" in caught.value.body["error"]["message"]


@pytest.mark.parametrize("name", list(MID_STREAM))
def test_provider_failure_mid_stream(name: str, client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(**ask(name)) as stream:
        received.extend(stream.text_stream)
    assert "".join(received) == "Partial"  # what came before the failure reached the client
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "error"
    if name == "error_chunk":
        assert "MOCK-MIDSTREAM" in caught.value.body["error"]["message"]


def test_client_disconnect_cancels_the_provider_request(routed: ProxyProcess,
                                                         mocks: tuple[MockAnthropic, MockOpenAI]) -> None:
    openai_mock = mocks[1]
    before = len(openai_mock.exchanges)
    body = {**ask("stall"), "stream": True}
    with httpx.stream("POST", f"{routed.url}/v1/messages", json=body, headers={"x-api-key": API_KEY},
                      timeout=30) as response:
        first = next(response.iter_lines())
        assert first == "event: message_start"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not openai_mock.exchanges[before:][0].aborted:
        time.sleep(0.05)
    assert openai_mock.exchanges[before].aborted, "the provider request was not cancelled"


def test_storage_and_fallback(mocks: tuple[MockAnthropic, MockOpenAI], tmp_path: Path) -> None:
    """A routed exchange is stored with its route and both sides; a failing provider falls back to Anthropic."""
    upstream, openai_mock = mocks
    require_tool(mitmdump_bin(), "run `make venv`")
    with start_proxy(upstream.url, tmp_path, routing_config(openai_mock)) as proxy:
        with sdk(proxy.url) as sdk_client:
            with sdk_client.messages.stream(**ask("text_then_two_parallel_tool_calls")) as stream:
                routed_message = stream.get_final_message()
            anthropic_before = len(upstream.requests)
            fallback_request = ask("status_500", model="claude-fallback-test")
            with sdk_client.messages.stream(**fallback_request) as stream:
                fallback_message = stream.get_final_message()
        assert proxy.stop() == 0
        stored = proxy.exchanges()
        with proxy.db() as db:
            raws = {e.id: (load_raw(db, e.response_raw_hash), load_raw(db, e.provider_response_hash) if
                           e.provider_response_hash else None) for e in stored}
            first_headers = request_headers(db, stored[0]) if stored else []

    assert len(stored) == 2 and all(e.routed for e in stored)
    first, second = stored
    assert first.route is not None and first.route["rule"] == "model"
    assert first.route["requested_model"] == "claude-routed-test" and first.route["model"] == "gpt-mock"
    assert first.route["provider"] == "mockai" and first.route["fell_back"] is False
    assert first.provider_request is not None and first.provider_request["model"] == "gpt-mock"
    assert "sk-mock-openai" not in json.dumps(first.provider_request)
    assert first.model == "claude-routed-test" and first.stop_reason == "tool_use"
    assert first.host == "127.0.0.1" and first.port == upstream.port and first.path == "/v1/messages"
    assert header(first_headers, "x-ccbridge-route") is None
    client_got, provider_sent = raws[first.id]
    assert client_got is not None and b"event: message_start" in client_got and b'"call_b"' in client_got
    assert provider_sent is not None
    lines = [json.loads(line) for line in provider_sent.splitlines()]
    assert lines[1]["choices"][0]["delta"]["content"] == "Checking both files."
    assert [b.type for b in routed_message.content] == ["text", "tool_use", "tool_use"]

    # fallback: the provider answered 500, Anthropic got the original request and its answer reached the client
    assert [b.text for b in fallback_message.content if b.type == "text"] == [MOCK_TEXT]
    to_anthropic = upstream.requests[anthropic_before:]
    assert len(to_anthropic) == 1
    assert to_anthropic[0].json() == {**fallback_request, "stream": True}
    sent = to_anthropic[0]
    assert API_KEY in (sent.header("x-api-key") or sent.header("authorization") or "")  # the client's own key
    assert sent.header("anthropic-version") and sent.header("x-stainless-helper-method") == "stream"
    assert sent.header("x-ccbridge-route") is None
    assert second.route is not None and second.route["fell_back"] is True and "HTTP 500" in second.route["error"]
    assert header(second.response_headers, "request-id") == upstream.exchanges[-1].request_id
    assert raws[second.id][1] is not None and b"mock provider says 500" in raws[second.id][1]


# --- start-up refuses a routing config it cannot carry out --------------------------------------------------


def start_mitmdump_expecting_failure(tmp_path: Path, routing: dict[str, Any], env: dict[str, str]) -> tuple[int, str]:
    """Run the real mitmdump with this config; (exit code, output). A mitmdump that starts is stopped at 40 s."""
    require_tool(mitmdump_bin(), "run `make venv`")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(routing))
    args = [str(mitmdump_bin()), "-s", str(ADDON), "--mode", "reverse:http://127.0.0.1:9", "--listen-host",
            "127.0.0.1", "--listen-port", "0", "--set", f"confdir={tmp_path / 'confdir'}",
            "--set", f"ccbridge_config={config_path}", "--set", f"ccbridge_storage_url=sqlite:///{tmp_path / 'x.db'}"]
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("CCBRIDGE_") and k not in ("SUBAGENT_MAPPINGS", "OPENAI_API_KEY")}
    try:
        done = subprocess.run(args, cwd=tmp_path, env={**clean, **env}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=40, check=False)
    except subprocess.TimeoutExpired as exc:  # it started: the config was accepted (run() killed it)
        return 0, str(exc.stdout or "")
    return done.returncode, done.stdout + done.stderr


MOCK_PROVIDER = {"mockai": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-mock"}}


@pytest.mark.parametrize(("routing", "env", "message"), [
    pytest.param({"providers": MOCK_PROVIDER, "subagents": {"default_provider": "mockai", "mappings": {
        "code-reviewer": {"provider": "nosuchai", "model": "m"}}}}, {},
        "subagents.mappings.code-reviewer.provider: unknown provider 'nosuchai'", id="unknown-provider"),
    pytest.param({"providers": {"mockai": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "ROUTING_TEST_KEY"}},
                  "subagents": {"default_provider": "mockai", "mappings": {"code-reviewer": "m"}}}, {},
                 "providers.mockai.api_key_env: environment variable ROUTING_TEST_KEY is not set", id="missing-key"),
    pytest.param({"providers": MOCK_PROVIDER, "subagents": {"default_provider": "mockai"}},
                 {"SUBAGENT_MAPPINGS": "code-reviewer:mockai/m,doc-writer"},
                 "SUBAGENT_MAPPINGS: bad entry 'doc-writer'", id="malformed-SUBAGENT_MAPPINGS"),
])
def test_a_bad_routing_config_stops_start_up(routing: dict[str, Any], env: dict[str, str], message: str,
                                             tmp_path: Path) -> None:
    code, output = start_mitmdump_expecting_failure(tmp_path, routing, env)
    assert code != 0, output
    assert message in output
