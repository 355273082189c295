"""Provider failures mapped to Anthropic errors."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from ccbridge.sse import parse_events
from ccbridge.translate.errors import (
    anthropic_error,
    context_length_message,
    error_for_exception,
    error_frame,
    stream_error_for_exception,
)


def error_type(reply: tuple[int, dict[str, str], dict]) -> tuple[int, str]:
    status, _, body = reply
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return status, body["error"]["type"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, (502, "api_error")),
        (400, (400, "invalid_request_error")),
        (422, (400, "invalid_request_error")),
        (401, (502, "api_error")),
        (403, (502, "api_error")),
        (404, (404, "not_found_error")),
        (408, (504, "timeout_error")),
        (409, (409, "api_error")),
        (413, (413, "request_too_large")),
        (429, (429, "rate_limit_error")),
        (500, (500, "api_error")),
        (502, (502, "api_error")),
        (503, (529, "overloaded_error")),
        (504, (504, "timeout_error")),
        (529, (529, "overloaded_error")),
        (418, (400, "invalid_request_error")),
    ],
)
def test_status_mapping(status: int | None, expected: tuple[int, str]) -> None:
    assert error_type(anthropic_error(status, "boom", provider="openai")) == expected


def test_provider_auth_failure_never_looks_like_claude_codes_own_key() -> None:
    status, headers, body = anthropic_error(401, "Incorrect API key provided", provider="openai", model="gpt-5-mini")
    assert status not in (401, 403)
    assert headers["x-should-retry"] == "false"
    assert "openai" in body["error"]["message"] and "gpt-5-mini" in body["error"]["message"]


def test_not_found_names_the_model_and_provider() -> None:
    _, _, body = anthropic_error(404, "model 'qwen3:9b' not found", provider="ollama", model="qwen3:9b")
    assert "qwen3:9b" in body["error"]["message"] and "ollama" in body["error"]["message"]


@pytest.mark.parametrize(("given", "sent"), [("120", "60"), ("7", "7"), ("0.4", "1"), (None, None), ("soon", None)])
def test_rate_limit_keeps_retry_after_capped_at_60(given: str | None, sent: str | None) -> None:
    _, headers, _ = anthropic_error(429, "slow down", retry_after=given)
    assert headers.get("retry-after") == sent


def test_exhausted_quota_is_not_retried() -> None:
    status, headers, _ = anthropic_error(429, "You exceeded your current quota [insufficient_quota]")
    assert status != 429 and headers["x-should-retry"] == "false"


def test_context_length_uses_anthropic_wording() -> None:
    openai_text = (
        "This model's maximum context length is 128000 tokens. However, you requested 140000 tokens "
        "(132000 in the messages, 8000 in the completion). Please reduce the length of the messages."
    )
    _, _, body = anthropic_error(400, openai_text)
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "prompt is too long: 132000 tokens > 128000 maximum",
    }


def test_context_length_when_only_max_tokens_overflows() -> None:
    vllm_text = (
        "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum context length "
        "is 32768 tokens and your request has 15000 input tokens (32000 > 32768 - 15000)."
    )
    assert context_length_message(vllm_text) == (
        "input length and `max_tokens` exceed context limit: 15000 + 32000 > 32768, "
        "decrease input length or `max_tokens` and try again"
    )


def test_context_length_without_numbers_still_says_prompt_is_too_long() -> None:
    message = context_length_message("Your input exceeds the context window of this model. [context_length_exceeded]")
    assert message is not None and message.startswith("prompt is too long: ")
    assert context_length_message("Invalid value for 'tool_choice'") is None


def test_error_frame_is_an_sse_error_event() -> None:
    events = parse_events(error_frame("overloaded_error", "Overloaded"))
    assert [(e.event, json.loads(e.data)) for e in events] == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    ]


def _status_error(cls: type[openai.APIStatusError], status: int, body: dict, headers: dict | None = None):
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    response = httpx.Response(status, request=request, headers=headers or {}, json={"error": body})
    return cls(body.get("message", "x"), response=response, body=body)


def test_openai_sdk_exceptions() -> None:
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    timeout = error_for_exception(openai.APITimeoutError(request=request), provider="openai")
    assert error_type(timeout) == (504, "timeout_error")
    connection = error_for_exception(openai.APIConnectionError(request=request), provider="ollama")
    assert error_type(connection) == (502, "api_error")
    limited = _status_error(
        openai.RateLimitError,
        429,
        {"message": "Rate limit reached", "code": "rate_limit_exceeded"},
        {"retry-after": "90"},
    )
    status, headers, body = error_for_exception(limited, provider="openai", model="gpt-5")
    assert (status, headers["retry-after"]) == (429, "60") and "Rate limit reached" in body["error"]["message"]
    auth = _status_error(openai.AuthenticationError, 401, {"message": "Incorrect API key", "code": "invalid_api_key"})
    assert error_type(error_for_exception(auth, provider="openai")) == (502, "api_error")


def test_a_failure_after_the_stream_began_says_the_stream_broke_off() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:11434/v1/chat/completions")
    # what the openai SDK raises for an `{"error": ...}` data line in the middle of a stream
    error_chunk = openai.APIError("the model crashed", request, body={"message": "the model crashed",
                                                                     "type": "server_error"})
    cut = httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    for exc, detail in ((error_chunk, "the model crashed"), (cut, "peer closed connection")):
        error_type_name, message = stream_error_for_exception(exc, provider="ollama", model="qwen3:8b")
        assert error_type_name == "api_error"
        assert message.startswith("the stream from ollama (qwen3:8b) broke off: ") and detail in message
        assert "could not reach" not in message


def test_a_timeout_after_the_stream_began_is_still_a_timeout() -> None:
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    error_type_name, message = stream_error_for_exception(openai.APITimeoutError(request=request), provider="openai")
    assert error_type_name == "timeout_error" and "did not answer in time" in message
