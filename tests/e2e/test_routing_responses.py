"""A provider with `api: responses`, through real mitmdump: read back with the `anthropic` SDK, and driven by the
real Claude Code CLI.

Requests for `claude-routed-*` are routed (rule `model`) to a mock Responses server, which answers with the
scenario named in the user message; `claude-dead-*` goes to a Responses provider nothing listens on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ccbridge.storage.read import load_raw
from tests.conftest import require_tool
from tests.support.claude_cli import agent_markdown, run_claude
from tests.support.mock_anthropic import MockAnthropic, MockRequest, Reply, delegating
from tests.support.mock_openai import closed_port
from tests.support.mock_responses import (
    EventItem,
    MockResponses,
    answer,
    error_event,
    error_reply,
    events,
    failed,
    function_call,
    message,
    reasoning,
    usage,
)
from tests.support.proxy import ProxyProcess, mitmdump_bin, start_proxy
from tests.support.routed import ask, sdk

pytestmark = pytest.mark.e2e



def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value}


def tool_use(call_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def tokens(input_tokens: int, output_tokens: int, cache_read: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": 0}


# name -> (what the provider sends, the content, stop_reason and usage the client must get)
SCENARIOS: dict[str, tuple[list[EventItem], list[dict[str, Any]], str, dict[str, int]]] = {
    "plain_text": (
        events(message("Hello", ", ", "world."), usage=usage(20, 5)),
        [text("Hello, world.")], "end_turn", tokens(20, 5),
    ),
    "text_then_two_parallel_tool_calls": (
        events(message("Checking both files."), function_call("call_a", "Read", '{"file_', 'path":"/a"}'),
               function_call("call_b", "Read", '{"file_path":"/b"}'), usage=usage(9000, 60, cached=8000)),
        [text("Checking both files."), tool_use("call_a", "Read", {"file_path": "/a"}),
         tool_use("call_b", "Read", {"file_path": "/b"})], "tool_use", tokens(1000, 60, cache_read=8000),
    ),
    "thinking_then_text": (
        events(reasoning(["Let me ", "think."], ["Two plus two."]), message("The answer is 4."),
               usage=usage(50, 30, reasoning_tokens=20)),
        [thinking("Let me think.\n\nTwo plus two."), text("The answer is 4.")], "end_turn", tokens(50, 30),
    ),
    "thinking_then_two_parallel_tool_calls": (
        events(reasoning(["I need both."]), function_call("call_r", "Read", '{"file_path":"/x.py"}'),
               function_call("call_g", "Grep", '{"pattern":', '"TODO"}'), usage=usage(300, 40)),
        [thinking("I need both."), tool_use("call_r", "Read", {"file_path": "/x.py"}),
         tool_use("call_g", "Grep", {"pattern": "TODO"})], "tool_use", tokens(300, 40),
    ),
    "cut_off_by_max_output_tokens": (
        events(message("A long ans"), status="incomplete", incomplete_reason="max_output_tokens",
               usage=usage(10, 16)),
        [text("A long ans")], "max_tokens", tokens(10, 16),
    ),
}
MID_STREAM = {
    "response_failed": failed("server_error", "the model crashed MOCK-MIDSTREAM", message("Partial")),
    "error_event": [*events(message("Partial"))[:-1], error_event("the model crashed MOCK-MIDSTREAM")],
}
# provider status -> (status the client gets, error type)
STATUS_ERRORS = {400: (400, "invalid_request_error"), 401: (502, "api_error"), 404: (404, "not_found_error"),
                 429: (429, "rate_limit_error"), 503: (529, "overloaded_error")}


def scenario_of(request: MockRequest) -> str:
    last = request.json()["input"][-1]["content"]
    return (last if isinstance(last, str) else last[0]["text"]).removeprefix("scenario: ")


def provider(request: MockRequest) -> Reply:
    if request.path != "/v1/responses":
        return error_reply(404, f"no route {request.path}")
    name = scenario_of(request)
    if name in SCENARIOS:
        return answer(request, SCENARIOS[name][0])
    if name in MID_STREAM:
        return answer(request, MID_STREAM[name])
    if name.startswith("status_"):
        status = int(name.removeprefix("status_"))
        headers = [("retry-after", "7")] if status == 429 else []
        return error_reply(status, f"mock provider says {status}", headers=headers)
    return error_reply(400, f"unknown scenario {name!r}")


@pytest.fixture(scope="module")
def mocks() -> Iterator[tuple[MockAnthropic, MockResponses]]:
    with MockAnthropic() as upstream, MockResponses(provider) as responses_mock:
        yield upstream, responses_mock


def routing_config(responses_mock: MockResponses) -> dict[str, Any]:
    return {
        "providers": {
            "respai": {"base_url": responses_mock.base_url, "api_key": "sk-mock-responses", "api": "responses"},
            "deadresp": {"base_url": f"http://127.0.0.1:{closed_port()}/v1", "api_key": "sk-dead", "api": "responses"},
        },
        "models": {
            "claude-routed-*": {"provider": "respai", "model": "gpt-mock"},
            "claude-dead-*": {"provider": "deadresp", "model": "gpt-dead"},
        },
        "routing": {"agent_dirs": []},
    }


@pytest.fixture(scope="module")
def routed(mocks: tuple[MockAnthropic, MockResponses],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    require_tool(mitmdump_bin(), "run `make venv`")
    with start_proxy(mocks[0].url, tmp_path_factory.mktemp("responses"), routing_config(mocks[1])) as proxy:
        yield proxy






def essence(message_: anthropic.types.Message) -> dict[str, Any]:
    """What Claude Code acts on; thinking signatures only checked for being ccbridge's."""
    data = message_.model_dump()
    content = []
    for block in data["content"]:
        if block["type"] == "thinking":
            assert block["signature"].startswith("ccbridge:")
            content.append(thinking(block["thinking"]))
        elif block["type"] == "text":
            content.append(text(block["text"]))
        else:
            content.append(tool_use(block["id"], block["name"], block["input"]))
    usage_fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return {"model": data["model"], "content": content, "stop_reason": data["stop_reason"],
            "usage": {k: data["usage"][k] for k in usage_fields}}


def expected(name: str) -> dict[str, Any]:
    _, content, stop_reason, usage_expected = SCENARIOS[name]
    return {"model": "claude-routed-test", "content": content, "stop_reason": stop_reason, "usage": usage_expected}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_streamed_answer(name: str, client: anthropic.Anthropic, mocks: tuple[MockAnthropic, MockResponses]) -> None:
    with client.messages.stream(**ask(name)) as stream:
        final = stream.get_final_message()
    assert essence(final) == expected(name)
    sent = mocks[1].responses_requests[-1]
    assert sent["model"] == "gpt-mock" and sent["stream"] is True and sent["store"] is False
    assert sent["max_output_tokens"] == 1000 and "messages" not in sent


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_non_streaming_gives_the_same_message(name: str, client: anthropic.Anthropic,
                                              mocks: tuple[MockAnthropic, MockResponses]) -> None:
    whole = client.messages.create(**ask(name))
    assert "stream" not in mocks[1].responses_requests[-1]  # the provider was asked for one response
    assert essence(whole) == expected(name)


def test_a_tool_loop_turn_reaches_the_provider_as_items(client: anthropic.Anthropic,
                                                        mocks: tuple[MockAnthropic, MockResponses]) -> None:
    tools = [{"name": "Read", "description": "Read a file", "input_schema": {
        "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}]
    messages = [{"role": "user", "content": "Read /a."},
                {"role": "assistant", "content": [tool_use("call_a", "Read", {"file_path": "/a"})]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_a", "content": "A-TEXT"},
                                             {"type": "text", "text": "scenario: plain_text"}]}]
    with client.messages.stream(model="claude-routed-test", max_tokens=1000, system="Be brief.", tools=tools,
                                thinking={"type": "enabled", "budget_tokens": 2000}, messages=messages) as stream:
        assert essence(stream.get_final_message()) == expected("plain_text")
    sent = mocks[1].responses_requests[-1]
    assert sent["instructions"] == "Be brief."
    assert sent["tools"] == [{"type": "function", "name": "Read", "description": "Read a file",
                              "parameters": tools[0]["input_schema"], "strict": False}]
    assert [item["type"] for item in sent["input"]] == ["message", "function_call", "function_call_output", "message"]
    assert sent["input"][2] == {"type": "function_call_output", "call_id": "call_a", "output": "A-TEXT"}


@pytest.mark.parametrize("status", list(STATUS_ERRORS))
def test_provider_error_before_the_first_byte(status: int, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(**ask(f"status_{status}")):
        pass
    expected_status, error_type = STATUS_ERRORS[status]
    error = caught.value
    assert error.status_code == expected_status
    assert isinstance(error.body, dict) and error.body["error"]["type"] == error_type
    assert f"mock provider says {status}" in error.body["error"]["message"]
    assert "respai" in error.body["error"]["message"]
    if status == 429:
        assert error.response.headers["retry-after"] == "7"


def test_unreachable_provider(client: anthropic.Anthropic) -> None:
    with (pytest.raises(anthropic.APIStatusError) as caught,
          client.messages.stream(**ask("plain_text", model="claude-dead-test"))):
        pass
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict) and "deadresp" in caught.value.body["error"]["message"]


@pytest.mark.parametrize("name", list(MID_STREAM))
def test_provider_failure_mid_stream(name: str, client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(**ask(name)) as stream:
        received.extend(stream.text_stream)
    assert "".join(received) == "Partial"  # what came before the failure reached the client
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "error"
    assert "MOCK-MIDSTREAM" in caught.value.body["error"]["message"]


def test_the_routed_exchange_is_stored_with_both_sides(mocks: tuple[MockAnthropic, MockResponses],
                                                      tmp_path: Path) -> None:
    upstream, responses_mock = mocks
    require_tool(mitmdump_bin(), "run `make venv`")
    with start_proxy(upstream.url, tmp_path, routing_config(responses_mock)) as proxy:
        with sdk(proxy.url) as sdk_client:
            with sdk_client.messages.stream(**ask("thinking_then_two_parallel_tool_calls")) as stream:
                stream.get_final_message()
            failing = sdk_client.messages.stream(**ask("response_failed"))
            with pytest.raises(anthropic.APIStatusError), failing as stream:
                stream.get_final_message()
        assert proxy.stop() == 0
        stored = proxy.exchanges()
        with proxy.db() as db:
            provider_sent = load_raw(db, stored[0].provider_response_hash)
    assert len(stored) == 2 and stored[0].routed and stored[0].stop_reason == "tool_use"
    assert "MOCK-MIDSTREAM" in (stored[1].route or {}).get("error", "")  # a failure event is on the record too
    route = stored[0].route or {}
    assert route["provider"] == "respai" and route["api"] == "responses" and route["model"] == "gpt-mock"
    assert stored[0].provider_request is not None and "input" in stored[0].provider_request
    assert "sk-mock-responses" not in json.dumps(stored[0].provider_request)
    assert provider_sent is not None
    kinds = [json.loads(line)["type"] for line in provider_sent.splitlines()]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


# --- the real Claude Code CLI: a subagent's Read -> Grep -> answer loop on the Responses provider ----------

FINAL_TEXT = "The code-reviewer subagent finished. MOCK-FINAL-ANSWER"
REVIEW_TEXT = "Review complete: hello.py prints hello; no TODOs. MOCK-RESPONSES-ANSWER-8b2c"
FILE_TEXT = "print('hello')  # FILE-MARKER-c0ffee\n"
REVIEWER = agent_markdown("code-reviewer", "Reviews code for problems. Use it after writing code.",
                          "You are a meticulous code reviewer. MARKER-REVIEWER-7f3a")
PARENT_PROMPT = "Please review the file hello.py and report any issues. MARKER-PARENT-PROMPT-91c2"


def outputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in body["input"] if item["type"] == "function_call_output"]


def test_the_cli_runs_a_subagent_tool_loop_on_the_responses_api(mock_anthropic: MockAnthropic,
                                                                tmp_path: Path) -> None:
    project = tmp_path / "claude-project"
    project.mkdir()

    def reviewer(request: MockRequest) -> Reply:
        done = outputs(request.json())
        if not done:
            return answer(request, events(
                reasoning(["Read the file first."]), message("Let me read it."),
                function_call("call_read1", "Read", json.dumps({"file_path": str(project / "hello.py")})),
                usage=usage(800, 30)))
        if len(done) == 1:
            return answer(request, events(
                function_call("call_grep1", "Grep", json.dumps({"pattern": "FILE-MARKER", "path": str(project)})),
                usage=usage(900, 20)))
        return answer(request, events(message(REVIEW_TEXT), usage=usage(1000, 25, cached=800)))

    mock_anthropic.handler = delegating(PARENT_PROMPT, "MOCK-ANTHROPIC-ANSWERED-A-SUBAGENT (routing failed)",
                                        FINAL_TEXT)
    config = {
        "providers": {"respai": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-mock", "api": "responses"}},
        "subagents": {"mappings": {"code-reviewer": "gpt-mock"}},
        "routing": {"agent_dirs": [str(project / ".claude" / "agents")]},
    }
    with MockResponses(reviewer) as responses_mock:
        config["providers"]["respai"]["base_url"] = responses_mock.base_url
        with start_proxy(mock_anthropic.url, tmp_path, config) as proxy:
            result = run_claude("Review hello.py with the code-reviewer agent.", proxy.url, tmp_path=tmp_path,
                                agents={"code-reviewer": REVIEWER}, files={"hello.py": FILE_TEXT})
            assert result.returncode == 0, result.stderr + proxy.log_tail()
            assert proxy.stop() == 0
            routed_exchanges = [e for e in proxy.exchanges() if e.routed]
        sent = responses_mock.responses_requests

    assert FINAL_TEXT in result.stdout
    posts = [r for r in mock_anthropic.requests if r.method == "POST" and r.path == "/v1/messages"]
    assert not [r for r in posts if r.header("x-claude-code-agent-id")], "a subagent request reached Anthropic"
    assert len(sent) == 3, [[i["type"] for i in body["input"]] for body in sent]
    assert "MARKER-REVIEWER-7f3a" in sent[0]["instructions"] and PARENT_PROMPT in json.dumps(sent[0]["input"])
    assert {"Read", "Grep"} <= {t["name"] for t in sent[0]["tools"]}
    read_output, = outputs(sent[1])
    assert read_output["call_id"] == "call_read1" and "FILE-MARKER-c0ffee" in read_output["output"]
    calls = [i for i in sent[2]["input"] if i["type"] == "function_call"]
    assert [c["call_id"] for c in calls] == ["call_read1", "call_grep1"]
    grep_output = outputs(sent[2])[1]
    assert grep_output["call_id"] == "call_grep1" and "hello.py" in grep_output["output"]
    final_turn = posts[-1].json()
    assert REVIEW_TEXT in json.dumps(final_turn["messages"][-1])  # the subagent's answer reached the parent
    assert [e.stop_reason for e in routed_exchanges] == ["tool_use", "tool_use", "end_turn"]
    assert all((e.route or {}).get("api") == "responses" for e in routed_exchanges)
    assert len({e.agent_id for e in routed_exchanges}) == 1
