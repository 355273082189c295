"""StreamTranslator.whole: the non-streaming path gives the same message as streaming the same answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccbridge.translate.stream import IncompleteAnswer, StreamTranslator

MODEL = "claude-haiku-4-5"


def completion(
    message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-5-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": usage,
    }


def call(id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def streamed(answer: dict[str, Any]) -> dict[str, Any]:
    """The same answer as a provider would stream it: small pieces, tool calls in fragments, usage last."""
    choice = answer["choices"][0]
    message = choice["message"]
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    for key in ("reasoning_content", "reasoning", "content", "refusal"):
        value = message.get(key) or ""
        chunks += [{"choices": [{"index": 0, "delta": {key: value[i : i + 3]}}]} for i in range(0, len(value), 3)]
    for index, tool_call in enumerate(message.get("tool_calls") or []):
        head = {
            "index": index,
            "id": tool_call["id"],
            "type": "function",
            "function": {"name": tool_call["function"]["name"], "arguments": ""},
        }
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]})
        arguments = tool_call["function"]["arguments"]
        chunks += [
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + 4]}}]},
                    }
                ]
            }
            for i in range(0, len(arguments), 4)
        ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if answer.get("usage"):
        chunks.append({"choices": [], "usage": answer["usage"]})
    translator = StreamTranslator(MODEL, "msg_same")
    for piece in chunks:
        translator.feed(piece)
    translator.finish()
    return translator.message


ANSWERS = {
    "text": completion({"content": "Hello, world."}, usage={"prompt_tokens": 30, "completion_tokens": 4}),
    "reasoning_and_text": completion({"reasoning_content": "First think.", "content": "Then answer."}),
    "vllm_reasoning_field": completion({"reasoning": "Think.", "content": "Done."}),
    "tools_only": completion(
        {
            "content": None,
            "tool_calls": [
                call("call_1", "Read", {"file_path": "/a"}),
                call("call_2", "Grep", {"pattern": "x|y", "path": "/src"}),
            ],
        },
        finish="tool_calls",
        usage={"prompt_tokens": 5000, "completion_tokens": 80, "prompt_tokens_details": {"cached_tokens": 4096}},
    ),
    "text_and_forced_tool": completion(
        {"content": "Running it.", "tool_calls": [call("c", "Bash", {"command": "ls"})]}
    ),
    "refusal": completion({"content": None, "refusal": "I can't help with that."}),
    "length": completion({"content": "Truncated answ"}, finish="length"),
    "whitespace_then_tool": completion(
        {"content": "\n\n", "tool_calls": [call("c", "TaskList", {})]}, finish="tool_calls"
    ),
    "empty": completion({"content": ""}),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_json_path_equals_streaming_path(name: str) -> None:
    assert StreamTranslator(MODEL, "msg_same").whole(ANSWERS[name]) == streamed(ANSWERS[name])


def test_message_shape() -> None:
    message = StreamTranslator(MODEL, "msg_1").whole(ANSWERS["tools_only"])
    assert message == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "/a"}},
            {"type": "tool_use", "id": "call_2", "name": "Grep", "input": {"pattern": "x|y", "path": "/src"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 904,
            "output_tokens": 80,
            "cache_read_input_tokens": 4096,
            "cache_creation_input_tokens": 0,
        },
    }


def test_reasoning_comes_first_and_no_empty_text_block() -> None:
    content = StreamTranslator(MODEL, "m").whole(ANSWERS["reasoning_and_text"])["content"]
    assert [b["type"] for b in content] == ["thinking", "text"]
    content = StreamTranslator(MODEL, "m").whole(ANSWERS["whitespace_then_tool"])["content"]
    assert [b["type"] for b in content] == ["tool_use"]


def test_missing_usage_is_estimated() -> None:
    usage = StreamTranslator(MODEL, "m", input_tokens_estimate=77).whole(ANSWERS["reasoning_and_text"])["usage"]
    assert usage["input_tokens"] == 77 and usage["output_tokens"] > 0


def test_no_finish_reason_is_an_incomplete_answer() -> None:
    with pytest.raises(IncompleteAnswer) as caught:
        StreamTranslator(MODEL, "m").whole(completion({"content": "half"}, finish=None))
    assert caught.value.error_type == "api_error"


def test_empty_answer_can_be_refused() -> None:
    with pytest.raises(IncompleteAnswer):
        StreamTranslator(MODEL, "m", empty_reply="error").whole(ANSWERS["empty"])


def test_a_shortened_tool_name_is_restored_in_the_json_answer() -> None:
    short = "mcp__claude_ai_Company_Knowledge_Base__search_docu_0123456789"
    long_name = "mcp__claude_ai_Company_Knowledge_Base__search_documents_by_semantic_similarity_with_filter"
    answer = completion({"content": None, "tool_calls": [call("c1", short, {"q": "x"})]}, finish="tool_calls")
    message = StreamTranslator(MODEL, "msg_1", tool_names={short: long_name}).whole(answer)
    assert [(b["type"], b["name"], b["input"]) for b in message["content"]] == [("tool_use", long_name, {"q": "x"})]
