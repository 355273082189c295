"""to_openai_request: Anthropic Messages request bodies -> Chat Completions keyword arguments."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ccbridge.translate.capabilities import ModelCapabilities, capabilities_for
from ccbridge.translate.request import (
    IMAGE_ATTACHED,
    NO_RESULT,
    NO_VISION,
    closest_effort,
    count_input_tokens,
    estimate_prompt_tokens,
    strict_schema,
    strip_proxy_thinking,
    to_openai_request,
)

FIXTURES = Path("/work/shared/fixtures/claude-code")
OPENAI = capabilities_for("openai", "openai", "gpt-4.1")
GPT5 = capabilities_for("openai", "openai", "gpt-5-mini")
GPT5_4 = capabilities_for("openai", "openai", "gpt-5.4")
O3 = capabilities_for("openai", "openai", "o3")
OLLAMA = capabilities_for("ollama", "ollama", "qwen3:8b")
VLLM = capabilities_for("vllm", "vllm", "Qwen/Qwen3-8B")
OPENROUTER_CLAUDE = capabilities_for("openrouter", "openrouter", "anthropic/claude-haiku-4.5")
PNG = "iVBORw0KGgo="


def convert(body: dict[str, Any], target: ModelCapabilities = OPENAI, session_id: str | None = None) -> dict[str, Any]:
    return to_openai_request({"max_tokens": 1000, **body}, target, model="target-model", session_id=session_id)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_use(id: str, name: str = "Read", input: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input or {"file_path": "/a"}}


def tool_result(id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id, "content": content, **extra}


def image(data: str = PNG) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def fixture_requests(version: str, name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / version / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line)["body"] for line in lines if json.loads(line)["method"] == "POST"]


# --- system -------------------------------------------------------------------------------------------


def test_system_string() -> None:
    assert convert({"system": "Be brief.", "messages": [user("hi")]})["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }


def test_system_blocks_drop_the_billing_line_and_cache_control() -> None:
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.329.30c; cc_entrypoint=sdk-cli;"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "Main prompt."},
    ]
    messages = convert({"system": system, "messages": [user("hi")]})["messages"]
    assert messages[0] == {"role": "system", "content": "You are Claude Code.\n\nMain prompt."}


def test_prefix_is_stable_across_turns_although_the_billing_line_changes() -> None:
    def system(version: str) -> list[dict[str, Any]]:
        return [
            {"type": "text", "text": f"x-anthropic-billing-header: cc_version={version};"},
            {"type": "text", "text": "Prompt."},
        ]

    first = convert({"system": system("2.1.329.aaa"), "messages": [user("hi")]})
    second = convert({"system": system("2.1.329.bbb"), "messages": [user("hi")]})
    assert first == second


def test_real_capture_has_no_anthropic_only_fields_left() -> None:
    for version in ("2.1.329", "2.1.197"):
        for body in fixture_requests(version, "subagent-sync"):
            for target in (GPT5, OLLAMA, VLLM):
                kwargs = to_openai_request(body, target, model="m", session_id="s")
                dumped = json.dumps(kwargs)
                for leaked in (
                    "cache_control",
                    "defer_loading",
                    "x-anthropic-billing-header",
                    "input_schema",
                    "context_management",
                    "output_config",
                    '"thinking"',
                ):
                    assert leaked not in dumped, (version, leaked)
                roles = [m["role"] for m in kwargs["messages"]]
                assert roles[0] == "system"
                assert set(roles) <= {"system", "user", "assistant", "tool"}


# --- mid-conversation system messages -----------------------------------------------------------------


def test_mid_conversation_system_is_kept_in_place_for_openai() -> None:
    messages = convert({"messages": [user("hi"), {"role": "system", "content": "Env: linux"}]})["messages"]
    assert messages == [{"role": "user", "content": "hi"}, {"role": "system", "content": "Env: linux"}]


def test_mid_conversation_system_waits_for_the_tool_results() -> None:
    body = {
        "messages": [
            user("go"),
            assistant([tool_use("t1")]),
            {"role": "system", "content": [{"type": "text", "text": "Hook context."}]},
            user([tool_result("t1", "file text")]),
        ]
    }
    roles = [(m["role"], m.get("content")) for m in convert(body)["messages"]]
    assert roles[2:] == [("tool", "file text"), ("system", "Hook context.")]


def test_mid_conversation_system_becomes_user_text_for_local_templates() -> None:
    body = {"system": "Main.", "messages": [user("Please review."), {"role": "system", "content": "Env: linux"}]}
    messages = convert(body, OLLAMA)["messages"]
    assert messages == [
        {"role": "system", "content": "Main."},
        {"role": "user", "content": "Please review.\n\nEnv: linux"},
    ]


def test_system_before_an_assistant_turn_for_local_templates() -> None:
    body = {
        "messages": [
            user("a"),
            assistant([tool_use("t1")]),
            user([tool_result("t1", "r")]),
            {"role": "system", "content": "note"},
            assistant("done"),
        ]
    }
    roles = [m["role"] for m in convert(body, OLLAMA)["messages"]]
    assert roles == ["user", "assistant", "tool", "user", "assistant"]


# --- user and assistant content -----------------------------------------------------------------------


def test_text_blocks_join_into_a_string_without_cache_control() -> None:
    content = [
        {"type": "text", "text": "<system-reminder>x</system-reminder>"},
        {"type": "text", "text": "Do it.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": ""},
    ]
    assert convert({"messages": [user(content)]})["messages"] == [
        {"role": "user", "content": "<system-reminder>x</system-reminder>\n\nDo it."}
    ]


def test_images_base64_and_url() -> None:
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    prefixed = image(f"data:image/png;base64,{PNG}")
    parts = convert({"messages": [user([{"type": "text", "text": "look"}, image(), url_image, prefixed])]})["messages"][
        0
    ]["content"]
    assert parts == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


def test_image_for_a_model_without_vision_is_a_placeholder() -> None:
    content = convert({"messages": [user([image(), {"type": "text", "text": "what is it?"}])]}, OLLAMA)["messages"][0][
        "content"
    ]
    assert content == f"{NO_VISION}\n\nwhat is it?"


def test_pdf_document_is_a_file_part_for_openai_and_a_placeholder_locally() -> None:
    document = {
        "type": "document",
        "title": "spec",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    parts = convert({"messages": [user([document])]}, GPT5)["messages"][0]["content"]
    assert parts == [
        {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
    ]
    local = convert({"messages": [user([document])]}, OLLAMA)["messages"][0]["content"]
    assert isinstance(local, str) and "spec" in local and "omitted" in local


def test_text_document_becomes_text() -> None:
    document = {
        "type": "document",
        "title": "notes",
        "source": {"type": "text", "media_type": "text/plain", "data": "abc"},
    }
    assert convert({"messages": [user([document])]})["messages"][0]["content"] == "notes:\nabc"


def test_assistant_text_and_tool_calls() -> None:
    body = {
        "messages": [
            user("go"),
            assistant(
                [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "text", "text": "Reading."},
                    tool_use("t1", "Read", {"file_path": "/ä"}),
                ]
            ),
            user([tool_result("t1")]),
        ]
    }
    message = convert(body)["messages"][1]
    assert message == {
        "role": "assistant",
        "content": "Reading.",
        "tool_calls": [
            {
                "id": "t1",
                "type": "function",
                "function": {"name": "Read", "arguments": json.dumps({"file_path": "/ä"}, ensure_ascii=False)},
            }
        ],
    }


def test_tool_only_assistant_turn_has_null_content() -> None:
    body = {"messages": [user("go"), assistant([tool_use("t1")]), user([tool_result("t1")])]}
    assert convert(body)["messages"][1]["content"] is None


def test_assistant_turn_with_only_thinking_has_empty_string_content() -> None:
    body = {
        "messages": [user("go"), assistant([{"type": "thinking", "thinking": "x", "signature": "s"}]), user("more")]
    }
    assert convert(body)["messages"][1] == {"role": "assistant", "content": ""}


# --- tool results -------------------------------------------------------------------------------------


def test_one_tool_message_per_result_then_the_remaining_user_text() -> None:
    body = {
        "messages": [
            user("go"),
            assistant([tool_use("t1"), tool_use("t2")]),
            user(
                [
                    tool_result("t1", "one"),
                    tool_result("t2", [{"type": "text", "text": "two a"}, {"type": "text", "text": "two b"}]),
                    {"type": "text", "text": "and now?"},
                ]
            ),
        ]
    }
    assert convert(body)["messages"][2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "tool", "tool_call_id": "t2", "content": "two a\ntwo b"},
        {"role": "user", "content": "and now?"},
    ]


def test_error_results_are_marked() -> None:
    body = {
        "messages": [user("go"), assistant([tool_use("t1")]), user([tool_result("t1", "No such file", is_error=True)])]
    }
    assert convert(body)["messages"][2]["content"] == "Error: No such file"


def test_empty_result_is_an_empty_string() -> None:
    body = {"messages": [user("go"), assistant([tool_use("t1")]), user([{"type": "tool_result", "tool_use_id": "t1"}])]}
    assert convert(body)["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": ""}


def test_images_in_tool_results_move_to_a_following_user_message() -> None:
    body = {
        "messages": [
            user("go"),
            assistant([tool_use("t1")]),
            user([tool_result("t1", [{"type": "text", "text": "Read image.png"}, image()])]),
        ]
    }
    tool_message, follow_up = convert(body, GPT5)["messages"][2:]
    assert tool_message == {"role": "tool", "tool_call_id": "t1", "content": f"Read image.png\n{IMAGE_ATTACHED}"}
    assert follow_up == {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}],
    }


def test_images_in_tool_results_without_vision_are_only_mentioned() -> None:
    body = {"messages": [user("go"), assistant([tool_use("t1")]), user([tool_result("t1", [image()])])]}
    messages = convert(body, OLLAMA)["messages"]
    assert messages[2] == {"role": "tool", "tool_call_id": "t1", "content": NO_VISION}
    assert len(messages) == 3


def test_tool_reference_becomes_text() -> None:
    content = [{"type": "tool_reference", "tool_name": "mcp__github__create_issue"}]
    body = {"messages": [user("go"), assistant([tool_use("t1", "ToolSearch")]), user([tool_result("t1", content)])]}
    assert convert(body)["messages"][2]["content"] == "Tool 'mcp__github__create_issue' is now available."


def test_call_without_result_gets_a_placeholder() -> None:
    body = {
        "messages": [
            user("go"),
            assistant([tool_use("t1"), tool_use("t2")]),
            user([tool_result("t1", "one"), {"type": "text", "text": "[Request interrupted by user]"}]),
        ]
    }
    assert convert(body)["messages"][2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "tool", "tool_call_id": "t2", "content": NO_RESULT},
        {"role": "user", "content": "[Request interrupted by user]"},
    ]


def test_trailing_call_without_result_gets_a_placeholder() -> None:
    messages = convert({"messages": [user("go"), assistant([tool_use("t1")])]})["messages"]
    assert messages[-1] == {"role": "tool", "tool_call_id": "t1", "content": NO_RESULT}


def test_result_without_call_becomes_user_text() -> None:
    body = {"messages": [user([tool_result("ghost", "lost output"), {"type": "text", "text": "continue"}])]}
    assert convert(body)["messages"] == [
        {"role": "user", "content": "[result of tool call ghost]\nlost output\n\ncontinue"}
    ]


# --- tools and tool_choice ----------------------------------------------------------------------------


TOOLS = [
    {
        "name": "Read",
        "description": "Read a file",
        "defer_loading": True,
        "cache_control": {"type": "ephemeral"},
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"file_path": {"type": "string"}},
            "additionalProperties": False,
        },
    },
    {"type": "custom", "name": "NoSchema"},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "bash_20250124", "name": "bash"},
]


def test_tools_keep_only_name_description_parameters() -> None:
    tools = convert({"messages": [user("hi")], "tools": TOOLS})["tools"]
    assert tools == [
        {
            "type": "function",
            "function": {"name": "Read", "description": "Read a file", "parameters": TOOLS[0]["input_schema"]},
        },
        {"type": "function", "function": {"name": "NoSchema", "parameters": {"type": "object", "properties": {}}}},
    ]


def test_only_server_tools_means_no_tool_fields() -> None:
    kwargs = convert(
        {
            "messages": [user("hi")],
            "tools": TOOLS[2:],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        }
    )
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(kwargs)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Read"}, {"type": "function", "function": {"name": "Read"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    assert convert({"messages": [user("hi")], "tools": TOOLS, "tool_choice": choice})["tool_choice"] == expected


def test_no_tool_choice_is_left_out() -> None:
    assert "tool_choice" not in convert({"messages": [user("hi")], "tools": TOOLS})


@pytest.mark.parametrize(("target", "sent"), [(OPENAI, True), (GPT5, True), (O3, False), (OLLAMA, False)])
def test_disable_parallel_tool_use_only_where_supported(target: ModelCapabilities, sent: bool) -> None:
    kwargs = convert(
        {"messages": [user("hi")], "tools": TOOLS, "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        target,
    )
    assert ("parallel_tool_calls" in kwargs) is sent
    if sent:
        assert kwargs["parallel_tool_calls"] is False


# --- parameters ---------------------------------------------------------------------------------------


def test_max_tokens_becomes_max_completion_tokens_clamped_for_reasoning_models() -> None:
    kwargs = to_openai_request(
        {"max_tokens": 200000, "messages": [user("hi")]}, GPT5, model="gpt-5-mini", session_id=None
    )
    assert kwargs["max_completion_tokens"] == GPT5.max_output and "max_tokens" not in kwargs


def test_max_tokens_stays_max_tokens_for_ollama() -> None:
    kwargs = convert({"max_tokens": 32000, "messages": [user("hi")]}, OLLAMA)
    assert kwargs["max_tokens"] == OLLAMA.max_output and "max_completion_tokens" not in kwargs
    assert convert({"max_tokens": 100, "messages": [user("hi")]}, OLLAMA)["max_tokens"] == 100


def test_sampling_parameters_for_a_plain_model() -> None:
    kwargs = convert(
        {
            "messages": [user("hi")],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["a", "b", "c", "d", "e"],
        },
        OPENAI,
    )
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["stop"]) == (0.2, 0.9, ["a", "b", "c", "d"])
    assert "top_k" not in kwargs and "extra_body" not in kwargs


def test_reasoning_models_drop_temperature_top_p_and_stop() -> None:
    body = {
        "messages": [user("hi")],
        "temperature": 0,
        "top_p": 0.5,
        "stop_sequences": ["x"],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
    }
    for target in (O3, GPT5):
        kwargs = convert(body, target)
        assert "temperature" not in kwargs and "top_p" not in kwargs
    assert "stop" not in convert(body, O3)
    assert "stop" not in convert(body, GPT5)  # gpt-5-mini rejects it: 400 "Unsupported parameter"


def test_gpt_5_1_keeps_temperature_only_without_reasoning() -> None:
    gpt51 = capabilities_for("openai", "openai", "gpt-5.1")
    assert convert({"messages": [user("hi")], "temperature": 0.3}, gpt51)["temperature"] == 0.3
    thinking = {
        "messages": [user("hi")],
        "temperature": 0.3,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low"},
    }
    kwargs = convert(thinking, gpt51)
    assert kwargs["reasoning_effort"] == "low" and "temperature" not in kwargs


def test_top_k_goes_through_extra_body_for_vllm() -> None:
    assert convert({"messages": [user("hi")], "top_k": 20}, VLLM)["extra_body"] == {"top_k": 20}


@pytest.mark.parametrize(
    ("thinking", "effort", "target", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 31999}, None, GPT5, "high"),
        ({"type": "enabled", "budget_tokens": 1024}, None, GPT5, "low"),
        ({"type": "enabled", "budget_tokens": 4000}, None, O3, "medium"),
        ({"type": "adaptive"}, "medium", GPT5, "medium"),
        ({"type": "adaptive"}, None, GPT5, "high"),
        ({"type": "adaptive"}, "max", O3, "high"),
        ({"type": "adaptive"}, "xhigh", GPT5, "high"),
        ({"type": "disabled"}, "high", GPT5, None),
        (None, None, GPT5, None),
        ({"type": "disabled"}, None, capabilities_for("openai", "openai", "gpt-5.1"), "none"),
        ({"type": "adaptive"}, "high", OLLAMA, None),
    ],
)
def test_reasoning_effort(thinking: Any, effort: str | None, target: ModelCapabilities, expected: str | None) -> None:
    body: dict[str, Any] = {"messages": [user("hi")]}
    if thinking:
        body["thinking"] = thinking
    if effort:
        body["output_config"] = {"effort": effort}
    assert convert(body, target).get("reasoning_effort") == expected


def test_gpt_5_4_with_tools_sends_effort_none_even_when_thinking() -> None:
    body = {
        "messages": [user("hi")],
        "tools": TOOLS[:1],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "temperature": 1,
    }
    kwargs = convert(body, GPT5_4)
    assert kwargs["reasoning_effort"] == "none" and kwargs["temperature"] == 1
    assert convert({**body, "tools": []}, GPT5_4)["reasoning_effort"] == "high"


def test_closest_effort_never_picks_none_for_a_thinking_request() -> None:
    assert closest_effort("minimal", ("none", "low", "medium", "high")) == "low"
    assert closest_effort("max", ("low", "medium", "high")) == "high"
    assert closest_effort("low", ("none",)) is None


def test_stream_asks_for_usage() -> None:
    kwargs = convert({"messages": [user("hi")], "stream": True})
    assert kwargs["stream"] is True and kwargs["stream_options"] == {"include_usage": True}
    assert "stream" not in convert({"messages": [user("hi")], "stream": False})


def test_user_id_is_hashed_and_session_becomes_the_cache_key_for_openai_only() -> None:
    user_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "9965ac59"})
    body = {"messages": [user("hi")], "metadata": {"user_id": user_id}}
    kwargs = convert(body, GPT5, session_id="9965ac59")
    assert kwargs["safety_identifier"] == hashlib.sha256(user_id.encode()).hexdigest()
    assert len(kwargs["safety_identifier"]) == 64 and kwargs["prompt_cache_key"] == "9965ac59"
    assert "user" not in kwargs
    local = convert(body, OLLAMA, session_id="9965ac59")
    assert "safety_identifier" not in local and "prompt_cache_key" not in local


def test_unknown_top_level_fields_are_not_copied() -> None:
    body = {
        "messages": [user("hi")],
        "context_management": {"edits": []},
        "container": "c",
        "service_tier": "auto",
        "cache_control": {"type": "ephemeral"},
        "mcp_servers": [],
    }
    assert set(convert(body)) == {"model", "messages", "max_completion_tokens"}


def test_model_is_the_target_model() -> None:
    assert convert({"model": "claude-opus-5-5", "messages": [user("hi")]})["model"] == "target-model"


# --- helpers ------------------------------------------------------------------------------------------


def test_estimate_prompt_tokens_grows_with_the_request() -> None:
    small = estimate_prompt_tokens(convert({"messages": [user("hi")]}))
    large = estimate_prompt_tokens(convert({"messages": [user("word " * 4000)]}))
    assert 0 < small < large and 4000 < large < 6000


def test_strip_proxy_thinking_removes_only_blocks_ccbridge_signed() -> None:
    body = {
        "messages": [
            user("q"),
            assistant(
                [
                    {"type": "thinking", "thinking": "mine", "signature": "ccbridge:abc"},
                    {"type": "thinking", "thinking": "real", "signature": "EqQBCkYIB..."},
                    {"type": "text", "text": "a"},
                ]
            ),
        ]
    }
    stripped = strip_proxy_thinking(body)
    assert [b.get("signature") for b in stripped["messages"][1]["content"]] == ["EqQBCkYIB...", None]
    assert len(body["messages"][1]["content"]) == 3  # the original is not modified


def test_capability_fields_are_all_read_somewhere() -> None:
    # Guards against a table field nobody honours.
    package = Path(__file__).resolve().parents[4] / "addons/ccbridge/translate"
    text = "".join(source.read_text() for source in package.glob("*.py"))
    unused = [f.name for f in dataclasses.fields(ModelCapabilities) if f"target.{f.name}" not in text]
    assert unused == []


# --- long tool names ----------------------------------------------------------------------------------

LONG_TOOL = "mcp__claude_ai_Company_Knowledge_Base__search_documents_by_semantic_similarity_with_filters"


def test_a_long_tool_name_is_shortened_alike_in_tools_choice_and_history() -> None:
    kwargs = convert({
        "tools": [{"name": LONG_TOOL, "input_schema": {"type": "object"}}, {"name": "Read"}],
        "tool_choice": {"type": "tool", "name": LONG_TOOL},
        "messages": [user("find it"), assistant([tool_use("t1", LONG_TOOL, {"q": "x"})]),
                     user([tool_result("t1", "found")])],
    })
    short = kwargs["tools"][0]["function"]["name"]
    assert len(short) <= 64 and short != LONG_TOOL
    assert kwargs["tools"][1]["function"]["name"] == "Read"
    assert kwargs["tool_choice"] == {"type": "function", "function": {"name": short}}
    assert kwargs["messages"][1]["tool_calls"][0]["function"]["name"] == short
    assert LONG_TOOL not in json.dumps(kwargs)


def test_a_tool_reference_names_the_tool_as_the_provider_knows_it() -> None:
    kwargs = convert({
        "tools": [{"name": LONG_TOOL, "input_schema": {"type": "object"}}],
        "messages": [user("x"), assistant([tool_use("t1", "ToolSearch")]),
                     user([tool_result("t1", [{"type": "tool_reference", "tool_name": LONG_TOOL}])])],
    })
    assert kwargs["messages"][2]["content"] == f"Tool '{kwargs['tools'][0]['function']['name']}' is now available."


# --- structured output --------------------------------------------------------------------------------

CLOSED_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["ok", "bad"]},
                   "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}},
                                                        "required": ["n"], "additionalProperties": False}}},
    "required": ["verdict", "items"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("where", ["output_format", "output_config"])
def test_structured_output_becomes_a_json_schema_response_format(where: str) -> None:
    wanted = {"type": "json_schema", "schema": CLOSED_SCHEMA}
    extra = {"output_format": wanted} if where == "output_format" else {"output_config": {"format": wanted}}
    kwargs = convert({"messages": [user("review")], **extra})
    assert kwargs["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "structured_output", "schema": CLOSED_SCHEMA, "strict": True},
    }


def test_output_config_effort_alone_sets_no_response_format() -> None:
    assert "response_format" not in convert({"messages": [user("hi")], "output_config": {"effort": "high"}})


def test_a_schema_strict_mode_would_refuse_is_sent_not_strict() -> None:
    open_schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "required": ["a"], "additionalProperties": False}
    kwargs = convert({"messages": [user("x")], "output_format": {"type": "json_schema", "schema": {
        "title": "My Result", **open_schema}}})
    assert kwargs["response_format"]["json_schema"]["strict"] is False
    assert kwargs["response_format"]["json_schema"]["name"] == "My_Result"


@pytest.mark.parametrize(("schema", "strict"), [
    (CLOSED_SCHEMA, True),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, False),
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {}}}, "required": ["a"],
      "additionalProperties": False}, False),
    ({"anyOf": [{"type": "string"}, {"type": "object", "properties": {"x": {"type": "string"}},
                                     "additionalProperties": False, "required": ["x"]}]}, True),
    ({"$defs": {"n": {"type": "object", "properties": {"v": {"type": "string"}}}}, "$ref": "#/$defs/n"}, False),
])
def test_strict_schema(schema: dict[str, Any], strict: bool) -> None:
    assert strict_schema(schema) is strict


# --- cache_control ------------------------------------------------------------------------------------

EPHEMERAL = {"type": "ephemeral"}


def cached_request() -> dict[str, Any]:
    return {
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.329"},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": EPHEMERAL},
                   {"type": "text", "text": "Be brief."}],
        "messages": [user([{"type": "text", "text": "first", "cache_control": EPHEMERAL}]),
                     assistant([tool_use("t1")]),
                     user([tool_result("t1", "file body", cache_control={"type": "ephemeral", "ttl": "1h"})])],
    }


def test_cache_control_is_kept_on_content_parts_for_openrouter_to_claude() -> None:
    messages = convert(cached_request(), OPENROUTER_CLAUDE)["messages"]
    assert messages[0] == {"role": "system", "content": [
        {"type": "text", "text": "You are Claude Code.", "cache_control": EPHEMERAL},
        {"type": "text", "text": "Be brief."}]}
    assert messages[1]["content"] == [{"type": "text", "text": "first", "cache_control": EPHEMERAL}]
    assert messages[3] == {"role": "tool", "tool_call_id": "t1", "content": [
        {"type": "text", "text": "file body", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}


OPENROUTER_GPT = capabilities_for("openrouter", "openrouter", "openai/gpt-4o")


@pytest.mark.parametrize("target", [OPENAI, GPT5, OLLAMA, OPENROUTER_GPT])
def test_cache_control_is_dropped_where_the_provider_does_not_honour_it(target: ModelCapabilities) -> None:
    kwargs = convert(cached_request(), target)
    assert "cache_control" not in json.dumps(kwargs)
    assert kwargs["messages"][0] == {"role": "system", "content": "You are Claude Code.\n\nBe brief."}
    assert kwargs["messages"][1]["content"] == "first"


# --- count_tokens -------------------------------------------------------------------------------------


def test_count_input_tokens_is_the_estimate_of_the_translated_request() -> None:
    body = {"model": "claude-haiku-4-5", "system": "You review code.", "messages": [user("x" * 4000)],
            "tools": [{"name": "Read", "input_schema": {"type": "object"}}]}
    counted = count_input_tokens(body, OPENAI, model="gpt-4.1")
    assert counted == estimate_prompt_tokens(to_openai_request(body, OPENAI, model="gpt-4.1", session_id=None))
    assert 1000 <= counted < 1100  # 4000 characters of text at 4 a token, plus the JSON around it
