"""OpenAI Chat Completions requests -> Anthropic Messages requests (the gateway's way in)."""

from __future__ import annotations

from typing import Any

import pytest
from genai_prices import calc_price, types

from ccbridge.translate.capabilities import capabilities_for
from ccbridge.translate.gateway_request import (
    CLAUDE_ALIASES,
    JSON_OBJECT_INSTRUCTION,
    THINKING_BUDGETS,
    GatewayRequestError,
    messages_request,
    resolve_model,
)
from ccbridge.translate.request import requested_effort, to_openai_request

MODEL = "claude-sonnet-5-5"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def translate(**chat: Any) -> dict[str, Any]:
    chat.setdefault("messages", [{"role": "user", "content": "hi"}])
    return messages_request(chat, model=MODEL)


def rejected(**chat: Any) -> GatewayRequestError:
    with pytest.raises(GatewayRequestError) as caught:
        translate(**chat)
    return caught.value


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- models -----------------------------------------------------------------------------------------


def test_aliases_resolve_to_claude_ids_and_ids_pass_unchanged() -> None:
    assert resolve_model("opus") == CLAUDE_ALIASES["opus"] == "claude-opus-5-5"
    assert resolve_model("Sonnet") == "claude-sonnet-5-5"
    assert resolve_model("haiku") == "claude-haiku-5-5"
    assert resolve_model("claude-3-5-haiku-20241022") == "claude-3-5-haiku-20241022"


def test_the_aliases_are_models_genai_prices_can_price() -> None:
    for model in CLAUDE_ALIASES.values():
        price = calc_price(types.Usage(input_tokens=1000, output_tokens=1000), model, provider_id="anthropic")
        assert price.total_price > 0, model


def test_the_body_carries_the_model_given_not_the_alias_the_client_sent() -> None:
    body = messages_request({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}, model=MODEL)
    assert body == {"model": MODEL, "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}


# --- messages ---------------------------------------------------------------------------------------


def test_system_and_developer_messages_join_into_system_in_order() -> None:
    body = translate(messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Never apologise."},
    ])
    assert body["system"] == "You are terse.\n\nAnswer in French.\n\nNever apologise."
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_user_parts_become_text_and_image_blocks() -> None:
    body = translate(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_an_inline_pdf_file_becomes_a_document_block() -> None:
    body = translate(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
    ]}])
    assert body["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
         "title": "spec.pdf"}]


def test_a_cache_breakpoint_on_a_part_is_kept() -> None:
    body = translate(messages=[{"role": "user", "content": [
        {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}]}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}]


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "data:image/png,notbase64", "file:///etc/passwd"])
def test_an_image_url_that_is_neither_http_nor_base64_data_is_refused(url: str) -> None:
    error = rejected(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert error.param == "messages[0].content[0].image_url.url"


def test_audio_input_is_refused_with_the_part_named() -> None:
    error = rejected(messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}])
    assert error.param == "messages[0].content[0].type"


def test_a_tool_round_trip_becomes_tool_use_and_merged_tool_results() -> None:
    body = translate(messages=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            call("call_1", "get_weather", '{"city": "Paris"}'),
            call("call_2", "get_weather", '{"city": "Rome"}'),
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
    ])
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
        ]},
    ]


def test_assistant_text_comes_before_its_tool_calls() -> None:
    body = translate(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [call("c1", "look", "")]},
    ])
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "c1", "name": "look", "input": {}},
    ]


def test_consecutive_messages_of_one_role_merge_into_one_turn() -> None:
    body = translate(messages=[
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
        {"role": "user", "content": "then this"},
    ])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    assert body["messages"][1]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "c1", "content": "r"},
                                              {"type": "text", "text": "then this"}]


def test_empty_messages_leave_no_empty_turn_behind() -> None:
    body = translate(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "again"},
    ])
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                             {"type": "text", "text": "again"}]}]


def test_invalid_tool_call_arguments_are_refused_with_their_place() -> None:
    error = rejected(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [call("c1", "f", "{}"), call("c2", "f", '{"a": ')]},
    ])
    assert error.param == "messages[1].tool_calls[1].function.arguments"
    assert "JSON" in str(error)


def test_tool_call_arguments_that_are_not_an_object_are_refused() -> None:
    error = rejected(messages=[{"role": "assistant", "tool_calls": [call("c1", "f", "[1, 2]")]}])
    assert error.param == "messages[0].tool_calls[0].function.arguments"


@pytest.mark.parametrize(("messages", "param"), [
    ([], "messages"),
    ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
    ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id"),
])
def test_malformed_conversations_are_refused(messages: list[Any], param: str) -> None:
    assert rejected(messages=messages).param == param


def test_n_above_one_is_refused() -> None:
    assert rejected(n=2).param == "n"
    assert "tool_choice" not in translate(n=1)


# --- tools ------------------------------------------------------------------------------------------


def test_function_tools_become_anthropic_tools() -> None:
    body = translate(tools=[
        {"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER}},
        {"type": "function", "function": {"name": "ping"}},
    ])
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather now", "input_schema": WEATHER},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "ping"}}, {"type": "tool", "name": "ping"}),
])
def test_tool_choice_maps_to_anthropic(choice: Any, expected: dict[str, Any]) -> None:
    body = translate(tools=[{"type": "function", "function": {"name": "ping"}}], tool_choice=choice)
    assert body["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_use() -> None:
    tools = [{"type": "function", "function": {"name": "ping"}}]
    assert translate(tools=tools, parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": True}
    assert translate(tools=tools, tool_choice="required", parallel_tool_calls=False)["tool_choice"] == {
        "type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in translate(tools=tools, parallel_tool_calls=True)


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in translate(tool_choice="none")


def test_non_function_tools_and_unknown_tool_choices_are_refused() -> None:
    assert rejected(tools=[{"type": "custom", "custom": {"name": "x"}}]).param == "tools[0]"
    tools = [{"type": "function", "function": {"name": "ping"}}]
    assert rejected(tools=tools, tool_choice="sometimes").param == "tool_choice"


# --- output format, limits, sampling ----------------------------------------------------------------


def test_json_schema_response_format_becomes_anthropic_structured_output() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    body = translate(response_format={"type": "json_schema",
                                      "json_schema": {"name": "Answer", "schema": schema, "strict": True}})
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "system" not in body


def test_structured_output_reads_back_as_the_same_response_format_in_routing() -> None:
    schema = {"title": "Answer", "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    body = translate(response_format={"type": "json_schema", "json_schema": {"name": "Answer", "schema": schema}})
    routed = to_openai_request(body, capabilities_for("openai", "openai", "gpt-4.1"), model="gpt-4.1",
                               session_id=None)
    assert routed["response_format"] == {"type": "json_schema",
                                         "json_schema": {"name": "Answer", "schema": schema, "strict": True}}


def test_a_json_schema_without_schema_is_refused() -> None:
    error = rejected(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert error.param == "response_format.json_schema.schema"


def test_json_object_response_format_becomes_a_system_instruction_after_the_clients_own() -> None:
    body = translate(response_format={"type": "json_object"},
                     messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert body["system"] == f"Be brief.\n\n{JSON_OBJECT_INSTRUCTION}"
    assert "output_config" not in body


def test_max_completion_tokens_wins_over_max_tokens_and_a_default_applies() -> None:
    assert translate(max_tokens=100)["max_tokens"] == 100
    assert translate(max_tokens=100, max_completion_tokens=200)["max_tokens"] == 200
    assert messages_request({"messages": [{"role": "user", "content": "x"}]}, model=MODEL,
                            default_max_tokens=777)["max_tokens"] == 777
    assert rejected(max_tokens=0).param == "max_tokens"
    assert rejected(max_completion_tokens="5").param == "max_completion_tokens"


def test_stop_as_string_or_list_becomes_stop_sequences() -> None:
    assert translate(stop="END")["stop_sequences"] == ["END"]
    assert translate(stop=["END", "###", " "])["stop_sequences"] == ["END", "###"]
    assert "stop_sequences" not in translate(stop=None)


def test_temperature_is_capped_at_anthropics_maximum_and_wins_over_top_p() -> None:
    assert translate(temperature=0.3)["temperature"] == 0.3
    assert translate(temperature=1.7)["temperature"] == 1.0
    both = translate(temperature=0.2, top_p=0.9)
    assert both["temperature"] == 0.2 and "top_p" not in both
    assert translate(top_p=0.9)["top_p"] == 0.9


def test_stream_and_user_are_carried() -> None:
    body = translate(stream=True, stream_options={"include_usage": True}, user="alice@example.com")
    assert body["stream"] is True
    assert body["metadata"] == {"user_id": "alice@example.com"}
    assert "stream_options" not in body and "stream" not in translate(stream=False)


def test_options_without_an_anthropic_equivalent_are_left_out() -> None:
    body = translate(frequency_penalty=0.5, presence_penalty=0.1, seed=7, logit_bias={"1": 2}, logprobs=False)
    assert set(body) == {"model", "max_tokens", "messages"}


# --- reasoning --------------------------------------------------------------------------------------


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high"])
def test_reasoning_effort_becomes_a_thinking_budget_below_max_tokens(effort: str) -> None:
    body = translate(reasoning_effort=effort, max_tokens=1000, temperature=0.5)
    budget = THINKING_BUDGETS[effort]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == budget + 1000
    assert "temperature" not in body  # Anthropic refuses sampling changes with thinking on


def test_a_max_tokens_above_the_budget_is_kept() -> None:
    assert translate(reasoning_effort="low", max_tokens=30000)["max_tokens"] == 30000


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_the_budget_reads_back_as_the_same_effort_in_routing(effort: str) -> None:
    assert requested_effort(translate(reasoning_effort=effort)) == effort


def test_reasoning_effort_none_or_unknown() -> None:
    assert "thinking" not in translate(reasoning_effort="none")
    assert rejected(reasoning_effort="extreme").param == "reasoning_effort"


def test_thinking_stays_off_where_anthropic_would_refuse_it() -> None:
    tools = [{"type": "function", "function": {"name": "ping"}}]
    assert "thinking" not in translate(reasoning_effort="high", tools=tools, tool_choice="required")
    loop = [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": [call("c1", "ping", "{}")]},
            {"role": "tool", "tool_call_id": "c1", "content": "pong"}]
    assert "thinking" not in translate(reasoning_effort="high", tools=tools, messages=loop)
    assert "thinking" in translate(reasoning_effort="high", tools=tools)
