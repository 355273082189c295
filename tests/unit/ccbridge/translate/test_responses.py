"""to_responses_request: Anthropic Messages request bodies -> OpenAI Responses keyword arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccbridge.translate.capabilities import ModelCapabilities, capabilities_for, parse_override
from ccbridge.translate.request import IMAGE_ATTACHED, NO_RESULT, estimate_prompt_tokens, to_openai_request
from ccbridge.translate.responses import MIN_OUTPUT_TOKENS, to_responses_request
from tests.fixtures import all_requests

GPT5 = capabilities_for("openai", "openai", "gpt-5-mini")
GPT5_4 = capabilities_for("openai", "openai", "gpt-5.4")
GPT41 = capabilities_for("openai", "openai", "gpt-4.1")
OLLAMA = capabilities_for("ollama", "ollama", "gpt-oss:20b")
PNG = "iVBORw0KGgo="
READ_TOOL = {"name": "Read", "description": "Read a file",
             "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                              "required": ["file_path"]}}


def convert(body: dict[str, Any], target: ModelCapabilities = GPT5, session_id: str | None = None) -> dict[str, Any]:
    return to_responses_request({"max_tokens": 1000, **body}, target, model="target-model", session_id=session_id)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_use(call_id: str, name: str = "Read", tool_input: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input or {"file_path": "/a"}}


def tool_result(call_id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def image() -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


# --- system and conversation ------------------------------------------------------------------------------


def test_system_becomes_instructions_without_the_billing_line() -> None:
    system = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.329.abc;"},
              {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
              {"type": "text", "text": "Be brief."}]
    kwargs = convert({"system": system, "messages": [user("hi")]})
    assert kwargs["instructions"] == "You are Claude Code.\n\nBe brief."
    assert kwargs["input"] == [{"type": "message", "role": "user", "content": [input_text("hi")]}]
    assert kwargs["model"] == "target-model" and kwargs["store"] is False
    assert "messages" not in kwargs


def test_a_tool_loop_becomes_function_call_items_answered_by_call_id() -> None:
    kwargs = convert({"tools": [READ_TOOL], "messages": [
        user("Read both."),
        assistant([{"type": "thinking", "thinking": "hm", "signature": "ccbridge:x"},
                   {"type": "text", "text": "Reading."}, tool_use("toolu_1"),
                   tool_use("toolu_2", tool_input={"file_path": "/b"})]),
        user([tool_result("toolu_1", "A"), tool_result("toolu_2", [{"type": "text", "text": "B"}]),
              {"type": "text", "text": "Now summarise."}]),
    ]})
    assert kwargs["input"] == [
        {"type": "message", "role": "user", "content": [input_text("Read both.")]},
        {"type": "message", "role": "assistant", "content": "Reading."},
        {"type": "function_call", "call_id": "toolu_1", "name": "Read", "arguments": '{"file_path": "/a"}'},
        {"type": "function_call", "call_id": "toolu_2", "name": "Read", "arguments": '{"file_path": "/b"}'},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "A"},
        {"type": "function_call_output", "call_id": "toolu_2", "output": "B"},
        {"type": "message", "role": "user", "content": [input_text("Now summarise.")]},
    ]


def test_a_tool_only_turn_has_no_empty_message_and_a_missing_result_is_filled_in() -> None:
    kwargs = convert({"messages": [user("go"), assistant([tool_use("toolu_1")]), user("interrupted; go on")]})
    kinds = [item["type"] for item in kwargs["input"]]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    assert kwargs["input"][2] == {"type": "function_call_output", "call_id": "toolu_1", "output": NO_RESULT}


def test_images_are_input_images_also_when_a_tool_returned_them() -> None:
    kwargs = convert({"messages": [
        user([{"type": "text", "text": "What is this?"}, image()]),
        assistant([tool_use("toolu_1", tool_input={"file_path": "/x.png"})]),
        user([tool_result("toolu_1", [image()])]),
    ]})
    url = f"data:image/png;base64,{PNG}"
    first, *_, output, attached = kwargs["input"]
    assert first["content"] == [input_text("What is this?"), {"type": "input_image", "image_url": url,
                                                               "detail": "auto"}]
    assert output == {"type": "function_call_output", "call_id": "toolu_1", "output": IMAGE_ATTACHED}
    assert attached == {"type": "message", "role": "user",
                        "content": [{"type": "input_image", "image_url": url, "detail": "auto"}]}


def test_a_pdf_is_an_input_file() -> None:
    pdf = {"type": "document", "title": "spec", "source": {"type": "base64", "media_type": "application/pdf",
                                                            "data": "JVBERi0="}}
    kwargs = convert({"messages": [user([pdf])]})
    assert kwargs["input"][0]["content"] == [{"type": "input_file", "filename": "spec.pdf",
                                              "file_data": "data:application/pdf;base64,JVBERi0="}]


def test_a_mid_conversation_system_message_is_a_developer_message() -> None:
    kwargs = convert({"system": "Top.", "messages": [user("hi"), assistant("hello"),
                                                     {"role": "system", "content": "Env changed."}, user("and?")]})
    assert kwargs["instructions"] == "Top."
    assert {"type": "message", "role": "developer", "content": "Env changed."} in kwargs["input"]


def test_real_claude_code_requests_leave_nothing_anthropic_only() -> None:
    for name, captured in all_requests():
        body = captured.get("body")
        if captured.get("method") != "POST" or not isinstance(body, dict) or "messages" not in body:
            continue
        kwargs = to_responses_request(body, GPT5, model="m", session_id="s")
        dumped = json.dumps(kwargs)
        for leaked in ("cache_control", "defer_loading", "x-anthropic-billing-header", "input_schema",
                       "output_config", '"thinking"', '"messages"', '"role": "tool"', "tool_calls"):
            assert leaked not in dumped, (name, leaked)
        assert {item["type"] for item in kwargs["input"]} <= {"message", "function_call", "function_call_output"}
        assert all(t["strict"] is False and "function" not in t for t in kwargs.get("tools", [])), name


# --- tools ------------------------------------------------------------------------------------------------


def test_tools_are_flat_and_not_strict_and_server_tools_are_dropped() -> None:
    kwargs = convert({"messages": [user("hi")],
                      "tools": [READ_TOOL, {"type": "web_search_20250305", "name": "web_search"}]})
    assert kwargs["tools"] == [{"type": "function", "name": "Read", "description": "Read a file",
                                "parameters": READ_TOOL["input_schema"], "strict": False}]


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "none"}, "none"),
    ({"type": "tool", "name": "Read"}, {"type": "function", "name": "Read"}),
])
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    kwargs = convert({"messages": [user("hi")], "tools": [READ_TOOL], "tool_choice": choice})
    assert kwargs["tool_choice"] == expected


def test_disable_parallel_tool_use() -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    kwargs = convert({"messages": [user("hi")], "tools": [READ_TOOL], "tool_choice": choice}, target=GPT41)
    assert kwargs["parallel_tool_calls"] is False


# --- limits, sampling, reasoning --------------------------------------------------------------------------


def test_max_tokens_is_max_output_tokens_clamped_both_ways() -> None:
    assert convert({"messages": [user("hi")], "max_tokens": 32000}, target=GPT41)["max_output_tokens"] == 32000
    assert convert({"messages": [user("hi")], "max_tokens": 500000})["max_output_tokens"] == GPT5.max_output
    assert convert({"messages": [user("hi")], "max_tokens": 1})["max_output_tokens"] == MIN_OUTPUT_TOKENS


def test_no_stop_sequences_or_top_k_and_sampling_as_the_model_allows() -> None:
    body = {"messages": [user("hi")], "stop_sequences": ["END"], "top_k": 5, "temperature": 0.2, "top_p": 0.9}
    gpt41 = convert(body, target=GPT41)
    assert (gpt41["temperature"], gpt41["top_p"]) == (0.2, 0.9)
    for kwargs in (gpt41, convert(body)):
        assert not {"stop", "top_k", "extra_body", "stream_options"} & set(kwargs)
    assert "temperature" not in convert(body)  # gpt-5 reasons: sampling is refused


def test_thinking_asks_for_reasoning_with_a_summary() -> None:
    kwargs = convert({"messages": [user("hi")], "thinking": {"type": "enabled", "budget_tokens": 31999}})
    assert kwargs["reasoning"] == {"effort": "high", "summary": "auto"}
    adaptive = convert({"messages": [user("hi")], "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}})
    assert adaptive["reasoning"] == {"effort": "low", "summary": "auto"}


def test_reasoning_stays_on_with_tools_unlike_chat_completions() -> None:
    body = {"messages": [user("hi")], "tools": [READ_TOOL], "thinking": {"type": "adaptive"},
            "output_config": {"effort": "medium"}}
    assert to_openai_request({"max_tokens": 100, **body}, GPT5_4, model="m", session_id=None)["reasoning_effort"] \
        == "none"
    assert convert(body, target=GPT5_4)["reasoning"] == {"effort": "medium", "summary": "auto"}


def test_without_thinking_no_summary_is_asked_for() -> None:
    assert convert({"messages": [user("hi")]}, target=GPT5_4)["reasoning"] == {"effort": "none"}
    assert "reasoning" not in convert({"messages": [user("hi")]})  # gpt-5's own default effort
    assert "reasoning" not in convert({"messages": [user("hi")], "thinking": {"type": "adaptive"}}, target=OLLAMA)


def test_summaries_can_be_switched_off_for_unverified_organisations() -> None:
    override = {"gpt-5*": parse_override("gpt-5*", {"reasoning_summary": False})}  # config.yaml `capabilities:`
    quiet = capabilities_for("openai", "openai", "gpt-5-mini", override)
    kwargs = convert({"messages": [user("hi")], "thinking": {"type": "adaptive"}}, target=quiet)
    assert kwargs["reasoning"] == {"effort": "high"}


def test_identity_and_cache_key() -> None:
    kwargs = convert({"messages": [user("hi")], "metadata": {"user_id": '{"device_id":"d"}'}}, session_id="sess-1")
    assert kwargs["prompt_cache_key"] == "sess-1" and len(kwargs["safety_identifier"]) == 64


def test_streaming_is_asked_for_as_the_client_asks() -> None:
    assert convert({"messages": [user("hi")], "stream": True})["stream"] is True
    assert "stream" not in convert({"messages": [user("hi")]})


# --- structured output ------------------------------------------------------------------------------------

CLOSED = {"type": "object", "properties": {"answer": {"type": "string"},
                                           "items": {"type": "array", "items": {
                                               "type": "object", "properties": {"n": {"type": "integer"}},
                                               "required": ["n"], "additionalProperties": False}}},
          "required": ["answer", "items"], "additionalProperties": False}
OPEN = {"type": "object", "properties": {"answer": {"type": "string"}, "note": {"type": "string"}},
        "required": ["answer"]}


@pytest.mark.parametrize("where", ["output_format", "output_config"])
def test_structured_output_is_a_json_schema_text_format(where: str) -> None:
    requested = {"type": "json_schema", "schema": CLOSED}
    body = {"output_format": requested} if where == "output_format" else {"output_config": {"format": requested}}
    kwargs = convert({"messages": [user("hi")], **body})
    assert kwargs["text"] == {"format": {"type": "json_schema", "name": "structured_output", "schema": CLOSED,
                                         "strict": True}}


def test_a_schema_strict_mode_would_refuse_is_sent_as_guidance() -> None:
    kwargs = convert({"messages": [user("hi")], "output_format": {"type": "json_schema", "schema": OPEN}})
    assert kwargs["text"]["format"]["strict"] is False and kwargs["text"]["format"]["schema"] == OPEN


def test_no_text_format_without_structured_output() -> None:
    assert "text" not in convert({"messages": [user("hi")], "output_config": {"effort": "high"}})


def test_the_token_estimate_counts_instructions_and_input() -> None:
    short = convert({"system": "s", "messages": [user("hi")]})
    long = convert({"system": "s" * 4000, "messages": [user("hi " * 1000)]})
    assert estimate_prompt_tokens(long) >= estimate_prompt_tokens(short) + 1500
