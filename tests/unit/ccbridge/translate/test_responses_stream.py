"""ResponsesStreamTranslator: Responses events in, Anthropic SSE out, checked against the grammar and the SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from ccbridge.translate.responses_stream import ResponsesStreamTranslator
from ccbridge.translate.stream import IncompleteAnswer
from tests.support.mock_responses import (
    error_event,
    events,
    failed,
    function_call,
    message,
    reasoning,
    response_of,
    usage,
)
from tests.unit.ccbridge.translate.test_stream import (
    MODEL,
    blocks,
    check_grammar,
    events_of,
    final_delta,
    partial_json,
    sdk_final_message,
)

SSE = list[tuple[str, dict[str, Any]]]


def translate(script: list[dict[str, Any]], *, complete: bool = True,
              **options: Any) -> tuple[bytes, ResponsesStreamTranslator]:
    translator = ResponsesStreamTranslator(MODEL, "msg_test", provider="mockai (gpt-mock)", **options)
    out = b"".join(translator.feed(e) for e in script) + translator.finish(complete=complete)
    return out, translator


def run(script: list[dict[str, Any]], **options: Any) -> tuple[SSE, dict[str, Any]]:
    raw, translator = translate(script, **options)
    events_sent = events_of(raw)
    check_grammar(events_sent)
    return events_sent, translator.message


def tokens(input_tokens: int, output_tokens: int, cache_read: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": 0}


def tool_use(call_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def arguments(index: int, item_id: str, delta: str) -> dict[str, Any]:
    return {"type": "response.function_call_arguments.delta", "output_index": index, "item_id": item_id,
            "delta": delta}


def without_signatures(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in block.items() if k != "signature"} for block in content]


SCRIPTS = {
    "text": events(message("Hel", "lo", ", world."), usage=usage(20, 5)),
    "reasoning_then_text": events(reasoning(["Let me ", "think."], ["Then answer."]), message("4."),
                                  usage=usage(50, 30, reasoning_tokens=20)),
    "reasoning_then_two_parallel_calls": events(
        reasoning(["Both files matter."]), message("Reading both."),
        function_call("call_a", "Read", '{"file_', 'path":"/a"}'), function_call("call_b", "Grep", '{"pattern":"x"}'),
        usage=usage(9000, 60, cached=8000)),
    "call_without_arguments": events(function_call("call_1", "TodoRead"), usage=usage(10, 3)),
}


def test_text_with_usage_and_cached_tokens() -> None:
    sent, msg = run(events(message("Hel", "lo"), usage=usage(9000, 5, cached=8000)))
    assert msg["content"] == [{"type": "text", "text": "Hello"}]
    assert [d["delta"]["text"] for n, d in sent if n == "content_block_delta"] == ["Hel", "lo"]  # streamed as it came
    assert final_delta(sent)["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final_delta(sent)["usage"] == tokens(1000, 5, cache_read=8000)
    assert sent[0][1]["message"]["model"] == MODEL


def test_reasoning_summary_parts_make_one_signed_thinking_block() -> None:
    sent, msg = run(SCRIPTS["reasoning_then_text"])
    assert [b["type"] for b in blocks(sent)] == ["thinking", "text"]
    assert msg["content"][0]["thinking"] == "Let me think.\n\nThen answer."
    assert msg["content"][0]["signature"].startswith("ccbridge:")
    assert msg["content"][1] == {"type": "text", "text": "4."}


def test_reasoning_and_two_parallel_tool_calls() -> None:
    sent, msg = run(SCRIPTS["reasoning_then_two_parallel_calls"])
    assert [b["type"] for b in blocks(sent)] == ["thinking", "text", "tool_use", "tool_use"]
    assert without_signatures(msg["content"])[2:] == [tool_use("call_a", "Read", {"file_path": "/a"}),
                                                      tool_use("call_b", "Grep", {"pattern": "x"})]
    assert partial_json(sent, 2) == '{"file_path":"/a"}' and partial_json(sent, 3) == '{"pattern":"x"}'
    assert final_delta(sent)["delta"]["stop_reason"] == "tool_use"
    assert final_delta(sent)["usage"] == tokens(1000, 60, cache_read=8000)


def test_interleaved_argument_deltas_of_two_calls() -> None:
    script = [
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "Read", "arguments": ""}},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "Grep", "arguments": ""}},
        arguments(0, "fc_1", '{"file_pa'),
        arguments(1, "fc_2", '{"pattern":'),
        arguments(0, "fc_1", 'th":"/x"}'),
        arguments(1, "fc_2", '"TODO"}'),
        {"type": "response.completed", "response": {"status": "completed", "usage": usage(300, 40)}},
    ]
    sent, msg = run(script)
    assert msg["content"] == [tool_use("call_1", "Read", {"file_path": "/x"}),
                              tool_use("call_2", "Grep", {"pattern": "TODO"})]
    assert final_delta(sent)["delta"]["stop_reason"] == "tool_use"


def test_arguments_and_text_sent_only_in_done_events_still_arrive() -> None:
    script = [
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}},
        {"type": "response.output_text.done", "output_index": 0, "item_id": "msg_1", "content_index": 0,
         "text": "Reading it."},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "Read", "arguments": ""}},
        {"type": "response.function_call_arguments.done", "output_index": 1, "item_id": "fc_1",
         "arguments": '{"file_path":"/a"}'},
        {"type": "response.output_item.done", "output_index": 1,
         "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "Read",
                  "arguments": '{"file_path":"/a"}'}},
        {"type": "response.completed", "response": {"status": "completed", "usage": usage(10, 5)}},
    ]
    sent, msg = run(script)
    assert msg["content"] == [{"type": "text", "text": "Reading it."}, tool_use("call_1", "Read", {"file_path": "/a"})]
    assert partial_json(sent, 1) == '{"file_path":"/a"}'  # once, not again for the item's done event


def test_a_call_announced_only_when_done() -> None:
    script = [{"type": "response.output_item.done", "output_index": 0,
               "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "Bash",
                        "arguments": '{"command":"ls"}'}},
              {"type": "response.completed", "response": {"status": "completed"}}]
    _, msg = run(script)
    assert msg["content"] == [tool_use("call_1", "Bash", {"command": "ls"})]


def test_a_call_without_arguments_gets_an_empty_input() -> None:
    _, msg = run(events(function_call("call_1", "TodoRead"), usage=usage(10, 3)))
    assert msg["content"] == [tool_use("call_1", "TodoRead", {})]


def test_a_server_that_sends_only_the_final_response() -> None:
    final = response_of(SCRIPTS["reasoning_then_two_parallel_calls"])
    _, msg = run([{"type": "response.completed", "response": final}])
    _, streamed = run(SCRIPTS["reasoning_then_two_parallel_calls"])
    assert msg == streamed


def test_streamed_items_are_not_repeated_from_the_final_response() -> None:
    script = events(message("Once."), function_call("call_1", "Read", '{"file_path":"/a"}'))
    final = script[-1]["response"]
    # some servers give the items of the final response other ids than the streamed ones
    final["output"] = [{**item, "id": f"other_{n}"} for n, item in enumerate(final["output"])]
    _, msg = run(script)
    assert msg["content"] == [{"type": "text", "text": "Once."}, tool_use("call_1", "Read", {"file_path": "/a"})]


@pytest.mark.parametrize(("reason", "stop_reason"), [("max_output_tokens", "max_tokens"),
                                                       ("content_filter", "refusal")])
def test_an_incomplete_response(reason: str, stop_reason: str) -> None:
    sent, msg = run(events(message("Partial an"), status="incomplete", incomplete_reason=reason,
                           usage=usage(10, 16)))
    assert msg["content"] == [{"type": "text", "text": "Partial an"}]
    assert final_delta(sent)["delta"]["stop_reason"] == stop_reason


def test_a_refusal() -> None:
    script = [{"type": "response.refusal.delta", "output_index": 0, "item_id": "msg_1", "content_index": 0,
               "delta": "I can't help with that."},
              {"type": "response.completed", "response": {"status": "completed", "usage": usage(5, 6)}}]
    sent, msg = run(script)
    assert msg["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert final_delta(sent)["delta"]["stop_reason"] == "refusal"


def test_no_usage_from_the_server_is_estimated() -> None:
    translator = ResponsesStreamTranslator(MODEL, "msg_test", input_tokens_estimate=321)
    for event in events(message("twelve chars")):
        translator.feed(event)
    translator.finish()
    assert translator.message["usage"]["input_tokens"] == 321 and translator.message["usage"]["output_tokens"] == 3


# --- failures ---------------------------------------------------------------------------------------------


def test_a_failed_response_after_some_text_ends_with_an_error_event() -> None:
    raw, translator = translate(failed("rate_limit_exceeded", "slow down", message("Partial")))
    sent = events_of(raw)
    assert [n for n, _ in sent][-1] == "error"
    assert sent[-1][1]["error"]["type"] == "rate_limit_error"
    assert sent[-1][1]["error"]["message"] == "mockai (gpt-mock) failed: slow down [rate_limit_exceeded]"
    assert "".join(d["delta"].get("text", "") for n, d in sent if n == "content_block_delta") == "Partial"
    assert translator.error == ("rate_limit_error", sent[-1][1]["error"]["message"])
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_final_message(raw)
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_an_error_event_mid_stream() -> None:
    script = [*events(message("Partial"))[:-1], error_event("the model crashed MOCK-MIDSTREAM")]
    raw, _ = translate(script)
    last = events_of(raw)[-1]
    assert last[0] == "error" and last[1]["error"]["type"] == "api_error"
    assert "MOCK-MIDSTREAM" in last[1]["error"]["message"]


def test_a_context_overflow_uses_anthropics_wording() -> None:
    text = "Your input exceeds the context window of this model."
    raw, _ = translate(failed("context_length_exceeded", text))
    error = events_of(raw)[-1][1]["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith("prompt is too long")


def test_a_stream_that_ends_without_a_terminal_event_is_an_error_not_an_end_turn() -> None:
    raw, translator = translate(events(message("Cut sh"))[:-1])
    assert events_of(raw)[-1][0] == "error" and translator.message["stop_reason"] is None


# --- the SDK, and the non-streamed path -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_the_sdk_accumulator_reads_the_stream(name: str) -> None:
    raw, translator = translate(SCRIPTS[name])
    assert sdk_final_message(raw).model_dump(exclude_none=True)["content"] == translator.message["content"]


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_a_non_streamed_response_gives_the_streamed_message(name: str) -> None:
    _, streamed = translate(SCRIPTS[name])
    whole = ResponsesStreamTranslator(MODEL, "msg_test").whole(response_of(SCRIPTS[name]))
    assert whole == streamed.message


def test_a_failed_non_streamed_response_is_an_incomplete_answer() -> None:
    translator = ResponsesStreamTranslator(MODEL, "msg_test", provider="mockai")
    with pytest.raises(IncompleteAnswer) as caught:
        translator.whole(response_of(failed("server_error", "boom")))
    assert caught.value.error_type == "api_error" and "mockai failed: boom" in str(caught.value)
