"""Anthropic answers and errors -> OpenAI Chat Completions answers and errors (the gateway's way out)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types import Model
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from ccbridge.translate.gateway_answer import (
    chat_completion,
    client_status,
    error_body,
    finish_reason,
    models_list,
    openai_error,
)
from ccbridge.translate.gateway_request import messages_request
from tests.support.mock_anthropic import message_json, text_block, tool_use_block, usage

MODEL = "claude-sonnet-5-5"


def translated(message: dict[str, Any]) -> dict[str, Any]:
    return chat_completion(message, model=MODEL, completion_id="chatcmpl-1", created=1_700_000_000)


def sdk_client(status: int, body: dict[str, Any]) -> openai.OpenAI:
    """An `openai` client whose every request is answered with `body` (no network)."""
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return openai.OpenAI(api_key="sk-ccb-test", base_url="http://gateway.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=transport))


def test_a_text_answer_becomes_a_chat_completion_the_sdk_parses() -> None:
    answer = translated(message_json([text_block("Hello"), text_block(" there.")]))
    completion = ChatCompletion.model_validate(answer)
    assert completion.id == "chatcmpl-1" and completion.model == MODEL and completion.created == 1_700_000_000
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello there."
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


def test_the_sdk_itself_returns_the_translated_answer() -> None:
    answer = translated(message_json([text_block("Hi.")]))
    completion = sdk_client(200, answer).chat.completions.create(model="sonnet", messages=[
        {"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Hi."
    assert completion.usage is not None and completion.usage.total_tokens == answer["usage"]["total_tokens"]


def test_tool_use_becomes_tool_calls_with_json_arguments() -> None:
    message = message_json([
        text_block("Checking both."),
        tool_use_block("get_weather", {"city": "Paris"}, "toolu_a"),
        tool_use_block("get_weather", {"city": "Zürich"}, "toolu_b"),
    ])
    completion = ChatCompletion.model_validate(translated(message))
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_a", "function", "get_weather"), ("toolu_b", "function", "get_weather")]
    assert [json.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"city": "Paris"}, {"city": "Zürich"}]


def test_only_tool_calls_leave_content_null() -> None:
    answer = translated(message_json([tool_use_block("ping", {}, "toolu_x")]))
    assert answer["choices"][0]["message"]["content"] is None
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_thinking_becomes_reasoning_content() -> None:
    message = message_json([{"type": "thinking", "thinking": "Two plus two.", "signature": "EqQBCkgIAR"},
                            {"type": "redacted_thinking", "data": "EmwKAhgB"}, text_block("4")])
    answer = translated(message)
    assert answer["choices"][0]["message"]["reasoning_content"] == "Two plus two."
    assert answer["choices"][0]["message"]["content"] == "4"
    ChatCompletion.model_validate(answer)
    assert "reasoning_content" not in translated(message_json([text_block("4")]))["choices"][0]["message"]


@pytest.mark.parametrize(("stop_reason", "expected"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
    (None, "stop"), ("a_reason_added_later", "stop"),
])
def test_stop_reasons_become_finish_reasons(stop_reason: Any, expected: str) -> None:
    assert finish_reason(stop_reason) == expected
    message = {**message_json([text_block("x")]), "stop_reason": stop_reason}
    assert ChatCompletion.model_validate(translated(message)).choices[0].finish_reason == expected


def test_usage_counts_cached_tokens_inside_prompt_tokens() -> None:
    message = {**message_json([text_block("x")]),
               "usage": usage(input_tokens=10, output_tokens=7, cache_read=300, cache_creation=40)}
    completion = ChatCompletion.model_validate(translated(message))
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 350
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 300
    assert completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 357


def test_missing_usage_counts_zero() -> None:
    message = {**message_json([text_block("x")]), "usage": {"output_tokens": 3}}
    assert translated(message)["usage"] == {"prompt_tokens": 0, "completion_tokens": 3, "total_tokens": 3,
                                            "prompt_tokens_details": {"cached_tokens": 0}}


# --- errors -----------------------------------------------------------------------------------------


def anthropic_body(error_type: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()


@pytest.mark.parametrize(("status", "error_type", "openai_type", "code"), [
    (400, "invalid_request_error", "invalid_request_error", None),
    (401, "authentication_error", "invalid_request_error", "invalid_api_key"),
    (403, "permission_error", "invalid_request_error", "permission_denied"),
    (404, "not_found_error", "invalid_request_error", "not_found"),
    (413, "request_too_large", "invalid_request_error", "request_too_large"),
    (429, "rate_limit_error", "requests", "rate_limit_exceeded"),
    (500, "api_error", "server_error", None),
    (529, "overloaded_error", "server_error", "overloaded"),
])
def test_anthropic_errors_take_openais_names(status: int, error_type: str, openai_type: str, code: Any) -> None:
    body = openai_error(status, anthropic_body(error_type, "something went wrong"))
    assert body == {"error": {"message": "something went wrong", "type": openai_type, "param": None, "code": code}}


def test_a_body_that_is_not_json_or_absent_still_gives_an_error_object() -> None:
    assert openai_error(502, b"<html>Bad Gateway</html>")["error"] == {
        "message": "<html>Bad Gateway</html>", "type": "server_error", "param": None, "code": None}
    assert openai_error(429, None)["error"]["message"] == "upstream answered HTTP 429"
    assert openai_error(429, None)["error"]["code"] == "rate_limit_exceeded"
    assert openai_error(418, {"unexpected": True})["error"]["type"] == "invalid_request_error"


def test_an_error_already_in_openais_shape_is_kept() -> None:
    upstream = {"error": {"message": "model not found", "type": "invalid_request_error", "param": "model",
                          "code": "model_not_found"}}
    assert openai_error(404, json.dumps(upstream).encode()) == upstream


def test_the_gateways_own_refusals() -> None:
    assert error_body(429, "limit reached", type="requests") == {
        "error": {"message": "limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    assert error_body(403, "model not allowed", type="invalid_request_error", code="model_not_allowed")["error"][
        "code"] == "model_not_allowed"


@pytest.mark.parametrize(("status", "error_class"), [
    (400, openai.BadRequestError), (401, openai.AuthenticationError), (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError), (429, openai.RateLimitError), (500, openai.InternalServerError),
])
def test_error_bodies_parse_as_the_sdks_own_errors(status: int, error_class: type[openai.APIStatusError]) -> None:
    body = openai_error(status, anthropic_body("api_error", "no luck"))
    with pytest.raises(error_class) as caught:
        sdk_client(status, body).chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "x"}])
    assert caught.value.message.endswith("no luck")
    assert caught.value.type == body["error"]["type"] and caught.value.code == body["error"]["code"]


def test_client_status_keeps_the_gateways_credential_problems_from_the_client() -> None:
    assert client_status(401) == 502 and client_status(403) == 502
    assert client_status(529) == 503
    assert [client_status(s) for s in (400, 404, 413, 429, 500)] == [400, 404, 413, 429, 500]


# --- models -----------------------------------------------------------------------------------------


def test_models_list_is_what_the_sdk_lists() -> None:
    body = models_list(["claude-opus-4-5", "sonnet", "mock/gpt-mock"], owned_by={"sonnet": "ccbridge"})
    assert body["object"] == "list"
    models = [Model.model_validate(m) for m in body["data"]]
    assert [(m.id, m.owned_by) for m in models] == [
        ("claude-opus-4-5", "anthropic"), ("sonnet", "ccbridge"), ("mock/gpt-mock", "mock")]
    listed = [m.id for m in sdk_client(200, body).models.list()]
    assert listed == ["claude-opus-4-5", "sonnet", "mock/gpt-mock"]


# --- a whole gateway round in process: the SDK's request translated, the answer translated back -----------


class Gateway:
    """An httpx transport doing the gateway's two translations around a scripted Anthropic answer."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []  # the Anthropic requests

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = messages_request(json.loads(request.content), model=MODEL)
        self.sent.append(body)
        answer = chat_completion(self.answers.pop(0), model=MODEL, completion_id="chatcmpl-9", created=1)
        return httpx.Response(200, json=answer)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(api_key="sk-ccb-test", base_url="http://gateway.test/v1", max_retries=0,
                             http_client=httpx.Client(transport=httpx.MockTransport(self)))


class Capital(BaseModel):
    country: str
    capital: str


def test_the_sdks_structured_output_helper_gets_its_parsed_object() -> None:
    gateway = Gateway(message_json([text_block('{"country": "France", "capital": "Paris"}')]))
    completion = gateway.client().chat.completions.parse(
        model="sonnet", messages=[{"role": "user", "content": "Capital of France?"}], response_format=Capital)
    assert completion.choices[0].message.parsed == Capital(country="France", capital="Paris")
    schema = gateway.sent[0]["output_config"]["format"]["schema"]
    assert schema["properties"].keys() == {"country", "capital"} and schema["additionalProperties"] is False


def test_a_tool_round_trip_with_the_sdks_own_message_objects() -> None:
    gateway = Gateway(
        message_json([tool_use_block("get_weather", {"city": "Paris"}, "toolu_p"),
                      tool_use_block("get_weather", {"city": "Rome"}, "toolu_r")]),
        message_json([text_block("Paris 18C, Rome 24C.")]),
    )
    client = gateway.client()
    tools: list[Any] = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = client.chat.completions.create(model="sonnet", messages=messages, tools=tools).choices[0].message
    messages.append(first)  # clients pass the SDK's message object straight back
    messages += [{"role": "tool", "tool_call_id": c.id, "content": "18C" if i == 0 else "24C"}
                 for i, c in enumerate(first.tool_calls or [])]
    second = client.chat.completions.create(model="sonnet", messages=messages, tools=tools)
    assert second.choices[0].message.content == "Paris 18C, Rome 24C."
    assert gateway.sent[1]["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_p", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_r", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_p", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_r", "content": "24C"}]},
    ]
