"""StreamTranslator: OpenAI chunks in, Anthropic SSE out, checked against the grammar and the anthropic SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest

from ccbridge.sse import parse_events
from ccbridge.translate.stream import EMPTY_REPLY, StreamTranslator

MODEL = "claude-opus-5-5"


# --- chunk builders -----------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **choice}]}


def text(s: str) -> dict[str, Any]:
    return chunk({"content": s})


def reasoning(s: str, key: str = "reasoning_content") -> dict[str, Any]:
    return chunk({key: s})


def tool(index: int | None = 0, id: str | None = None, name: str | None = None, args: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"function": {}}
    if index is not None:
        item["index"] = index
    if id is not None:
        item["id"] = id
        item["type"] = "function"
    if name is not None:
        item["function"]["name"] = name
    if args is not None:
        item["function"]["arguments"] = args
    return chunk({"tool_calls": [item]})


def done(reason: str = "stop") -> dict[str, Any]:
    return chunk(finish=reason)


def usage(prompt: int, completion: int, cached: int = 0, **details: int) -> dict[str, Any]:
    return {
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, **details},
        },
    }


# --- running and checking -----------------------------------------------------------------------------


def translate(chunks: list[dict[str, Any]], *, complete: bool = True, **options: Any) -> tuple[bytes, StreamTranslator]:
    translator = StreamTranslator(MODEL, "msg_test", **options)
    out = b"".join(translator.feed(c) for c in chunks) + translator.finish(complete=complete)
    return out, translator


def events_of(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    assert b"[DONE]" not in raw
    for frame_text in raw.decode().split("\n\n")[:-1]:
        assert frame_text.startswith("event: "), frame_text  # the SDK ignores frames without a name
    events = [(e.event, e.json()) for e in parse_events(raw)]
    for name, data in events:
        assert data["type"] == name
    return events


def check_grammar(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Invariants I1-I7 of the translation notes (section 3.4)."""
    names = [n for n, _ in events if n != "ping"]
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert names[-2:] == ["message_delta", "message_stop"] and names.count("message_delta") == 1
    open_block: tuple[int, str] | None = None
    next_index = 0
    texts: dict[int, str] = {}
    for name, data in events:
        if name == "content_block_start":
            assert open_block is None, "one block open at a time"
            assert data["index"] == next_index
            open_block = (data["index"], data["content_block"]["type"])
            if open_block[1] == "tool_use":
                assert data["content_block"]["input"] == {}
            next_index += 1
        elif name == "content_block_delta":
            assert open_block is not None and data["index"] == open_block[0]
            kind = data["delta"]["type"]
            allowed = {
                "text": {"text_delta"},
                "thinking": {"thinking_delta", "signature_delta"},
                "tool_use": {"input_json_delta"},
            }[open_block[1]]
            assert kind in allowed, (kind, open_block)
            if kind == "text_delta":
                texts[data["index"]] = texts.get(data["index"], "") + data["delta"]["text"]
        elif name == "content_block_stop":
            assert open_block is not None and data["index"] == open_block[0]
            open_block = None
        elif name == "message_delta":
            assert open_block is None
    assert all(t.strip() for t in texts.values()), "no blank text block"


def blocks(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [d["content_block"] for n, d in events if n == "content_block_start"]


def partial_json(events: list[tuple[str, dict[str, Any]]], index: int) -> str:
    return "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["index"] == index and d["delta"]["type"] == "input_json_delta"
    )


def final_delta(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return next(d for n, d in events if n == "message_delta")


def run(chunks: list[dict[str, Any]], **options: Any) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    raw, translator = translate(chunks, **options)
    events = events_of(raw)
    check_grammar(events)
    return events, translator.message


# --- text and blocks ----------------------------------------------------------------------------------


def test_worked_example_from_the_notes() -> None:
    events, message = run(
        [
            chunk({"role": "assistant", "content": ""}),
            text("Checking both files."),
            tool(0, "call_a", "Read", ""),
            tool(0, args='{"file_path":"/a"}'),
            tool(1, "call_b", "Read", '{"file_path":"/b"}'),
            done("tool_calls"),
            usage(9000, 60, cached=8000),
        ]
    )
    assert [b["type"] for b in blocks(events)] == ["text", "tool_use", "tool_use"]
    assert partial_json(events, 2) == '{"file_path":"/b"}'
    assert final_delta(events) == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 1000,
            "output_tokens": 60,
            "cache_read_input_tokens": 8000,
            "cache_creation_input_tokens": 0,
        },
    }
    assert message["content"][2] == {"type": "tool_use", "id": "call_b", "name": "Read", "input": {"file_path": "/b"}}


def test_message_start_echoes_the_requested_model_with_zero_usage() -> None:
    events, message = run([text("hi"), done()])
    start = events[0][1]["message"]
    assert start["model"] == MODEL and message["model"] == MODEL
    assert start["id"] == "msg_test" and start["content"] == [] and start["stop_reason"] is None
    assert set(start["usage"].values()) == {0}


def test_text_after_a_tool_call_opens_a_new_text_block() -> None:
    events, message = run([text("Let me look."), tool(0, "c1", "Read", '{"p":1}'), text("Done looking."), done()])
    assert [b["type"] for b in blocks(events)] == ["text", "tool_use", "text"]
    assert [b.get("text") for b in message["content"]] == ["Let me look.", None, "Done looking."]


def test_whitespace_only_text_before_a_tool_call_makes_no_block() -> None:
    events, message = run([text("\n\n"), text("  "), tool(0, "c1", "Bash", '{"command":"ls"}'), done("tool_calls")])
    assert [b["type"] for b in blocks(events)] == ["tool_use"]
    assert message["content"] == [{"type": "tool_use", "id": "c1", "name": "Bash", "input": {"command": "ls"}}]


def test_leading_whitespace_is_kept_once_real_text_follows() -> None:
    _, message = run([text("\n"), text("Hello"), text(" "), text("world"), done()])
    assert message["content"] == [{"type": "text", "text": "\nHello world"}]


def test_empty_content_deltas_between_tool_fragments_are_ignored() -> None:
    events, _ = run(
        [
            tool(0, "c1", "Bash", ""),
            text(""),
            tool(0, args='{"comm'),
            chunk({"content": None}),
            tool(0, args='and":"ls"}'),
            text(""),
            done("tool_calls"),
        ]
    )
    assert [b["type"] for b in blocks(events)] == ["tool_use"]
    assert partial_json(events, 0) == '{"command":"ls"}'


# --- tool call keying ---------------------------------------------------------------------------------


def test_parallel_calls_get_contiguous_blocks_closed_in_order() -> None:
    events, message = run(
        [
            tool(0, "c1", "Read", '{"file_path":'),
            tool(0, args='"/a"}'),
            tool(1, "c2", "Read", '{"file_path":'),
            tool(1, args='"/b"}'),
            done("tool_calls"),
        ]
    )
    assert [(b["id"], b["name"]) for b in blocks(events)] == [("c1", "Read"), ("c2", "Read")]
    assert [b["input"] for b in message["content"]] == [{"file_path": "/a"}, {"file_path": "/b"}]
    assert message["stop_reason"] == "tool_use"


def test_calls_all_labelled_index_zero_are_split_by_id() -> None:
    _, message = run(
        [
            tool(0, "call_1", "get_weather", '{"city":"A"}'),
            tool(0, "call_2", "get_weather", '{"city":"B"}'),
            done("tool_calls"),
        ]
    )
    assert [(b["id"], b["input"]) for b in message["content"]] == [("call_1", {"city": "A"}), ("call_2", {"city": "B"})]


def test_calls_all_labelled_index_zero_without_ids_are_split_by_name() -> None:
    _, message = run(
        [
            tool(0, name="get_weather", args='{"city":'),
            tool(0, args='"A"}'),
            tool(0, name="get_time", args='{"tz":"UTC"}'),
            done("tool_calls"),
        ]
    )
    assert [(b["name"], b["input"]) for b in message["content"]] == [
        ("get_weather", {"city": "A"}),
        ("get_time", {"tz": "UTC"}),
    ]
    assert message["content"][0]["id"] != message["content"][1]["id"]


def test_a_repeated_name_inside_an_unfinished_call_does_not_split_it() -> None:
    _, message = run([tool(0, name="Read", args='{"a":'), tool(0, name="Read", args="1}"), done("tool_calls")])
    assert [b["input"] for b in message["content"]] == [{"a": 1}]


def test_deltas_without_index_continue_the_last_call_and_ids_start_new_ones() -> None:
    _, message = run(
        [
            tool(None, "c1", "Read", ""),
            tool(None, args='{"p":"/a"}'),
            tool(None, "c2", "Grep", '{"q":'),
            tool(None, args='"x"}'),
            done("tool_calls"),
        ]
    )
    assert [(b["id"], b["name"], b["input"]) for b in message["content"]] == [
        ("c1", "Read", {"p": "/a"}),
        ("c2", "Grep", {"q": "x"}),
    ]


def test_a_complete_call_in_one_chunk_streams_its_arguments_in_the_same_block() -> None:
    events, message = run([tool(0, "c1", "Bash", '{"code":"uptime"}'), done("tool_calls")])
    assert partial_json(events, 0) == '{"code":"uptime"}'
    assert message["content"][0]["input"] == {"code": "uptime"}


def test_arguments_sent_as_an_object_are_serialised() -> None:
    _, message = run([tool(0, "c1", "Bash", {"command": "ls"}), done("tool_calls")])
    assert message["content"][0]["input"] == {"command": "ls"}


def test_interleaved_fragments_of_two_calls_give_two_valid_inputs() -> None:
    first = '{"file_path":"/tmp/a.txt"}'
    second = '{"pattern":"TODO","path":"/src"}'
    events, message = run(
        [
            tool(0, "c1", "Read", first[:8]),
            tool(1, "c2", "Grep", second[:5]),
            tool(0, args=first[8:]),
            tool(1, args=second[5:]),
            done("tool_calls"),
        ]
    )
    assert partial_json(events, 0) == first and partial_json(events, 1) == second
    assert [b["input"] for b in message["content"]] == [json.loads(first), json.loads(second)]


def test_escaped_arguments_split_mid_escape_concatenate_byte_for_byte() -> None:
    command = 'grep -n "a|b" file.txt | sed \'s/\\\\"/x/g\' && echo "done \\"quoted\\"" ' * 12
    arguments = json.dumps({"command": command, "description": 'pipes | and "quotes"'})
    assert len(arguments) > 700
    pieces = [arguments[i : i + 7] for i in range(0, len(arguments), 7)]
    events, message = run([tool(0, "c1", "Bash", ""), *[tool(0, args=p) for p in pieces], done("tool_calls")])
    assert partial_json(events, 0) == arguments
    assert message["content"][0]["input"]["command"] == command


def test_malformed_arguments_are_passed_through_raw() -> None:
    raw = "{'command': 'ls',}"
    events, message = run([tool(0, "c1", "Bash", raw), done("tool_calls")])
    assert partial_json(events, 0) == raw
    assert message["content"][0]["input"] == {"_raw_arguments": raw}


def test_zero_argument_call_gets_an_empty_object() -> None:
    events, message = run([tool(0, "c1", "TaskList", ""), done("tool_calls")])
    assert partial_json(events, 0) == "{}"
    assert message["content"][0]["input"] == {}


def test_tool_ids_are_made_anthropic_safe_and_missing_ones_synthesised() -> None:
    _, message = run([tool(0, "functions.Bash:0", "Bash", "{}"), tool(1, name="Read", args="{}"), done("tool_calls")])
    first, second = (b["id"] for b in message["content"])
    assert first == "functions_Bash_0"
    assert second.startswith("toolu_") and len(second) == 30
    _, again = run([tool(0, "functions.Bash:0", "Bash", "{}"), tool(1, name="Read", args="{}"), done("tool_calls")])
    assert again["content"][1]["id"] == second  # deterministic: the JSON path must give the same id


# --- stop reasons -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "with_tool", "expected"),
    [
        ("stop", False, "end_turn"),
        ("stop", True, "tool_use"),
        ("tool_calls", True, "tool_use"),
        ("tool_calls", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("length", True, "max_tokens"),
        ("content_filter", False, "refusal"),
        ("function_call", True, "tool_use"),
        ("eos", False, "end_turn"),
    ],
)
def test_finish_reason_maps_to_stop_reason(finish: str, with_tool: bool, expected: str) -> None:
    chunks = [text("Answer.")] + ([tool(0, "c1", "Bash", '{"command":"ls"}')] if with_tool else [])
    _, message = run([*chunks, done(finish)])
    assert message["stop_reason"] == expected


def test_length_mid_tool_call_keeps_the_partial_json() -> None:
    events, message = run([tool(0, "c1", "Write", '{"file_path":"/a","content":"abc'), done("length")])
    assert partial_json(events, 0) == '{"file_path":"/a","content":"abc'
    assert message["stop_reason"] == "max_tokens"


def test_refusal_delta_becomes_text_with_stop_reason_refusal() -> None:
    _, message = run([chunk({"refusal": "I can't help with that."}), done("stop")])
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


def test_vllm_matched_stop_string_becomes_stop_sequence() -> None:
    _, message = run([text("one two"), done("stop")], stop_sequences=["END"])
    assert message["stop_reason"] == "end_turn"
    vllm_finish = chunk(finish="stop", stop_reason="END")
    _, message = run([text("one two"), vllm_finish], stop_sequences=["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


# --- usage --------------------------------------------------------------------------------------------


def test_usage_after_the_finish_chunk_gives_one_message_delta_at_finish() -> None:
    translator = StreamTranslator(MODEL, "msg_test")
    early = translator.feed(text("Hi")) + translator.feed(done("stop")) + translator.feed(usage(100, 5))
    assert b"message_delta" not in early and b"message_stop" not in early
    assert b"content_block_stop" in early  # blocks close at the finish chunk: Claude Code can act on them
    events = events_of(early + translator.finish())
    assert [n for n, _ in events].count("message_delta") == 1
    assert final_delta(events)["usage"]["input_tokens"] == 100
    assert final_delta(events)["usage"]["output_tokens"] == 5


def test_usage_on_the_finish_chunk_itself_is_accepted() -> None:
    finish = chunk(finish="stop") | {"usage": {"prompt_tokens": 40, "completion_tokens": 2}}
    events, _ = run([text("Hi"), finish])
    assert final_delta(events)["usage"]["input_tokens"] == 40


def test_cached_and_written_tokens_are_not_counted_twice() -> None:
    events, message = run([text("Hi"), done(), usage(12000, 500, cached=8000, cache_write_tokens=1000)])
    assert final_delta(events)["usage"] == {
        "input_tokens": 3000,
        "output_tokens": 500,
        "cache_read_input_tokens": 8000,
        "cache_creation_input_tokens": 1000,
    }
    assert message["usage"] == final_delta(events)["usage"]


def test_missing_usage_is_estimated_not_zero() -> None:
    events, _ = run([text("x" * 400), done()], input_tokens_estimate=1234)
    got = final_delta(events)["usage"]
    assert got["input_tokens"] == 1234 and got["output_tokens"] == 100


# --- reasoning ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_fields_become_a_signed_thinking_block_before_text(key: str) -> None:
    events, message = run([reasoning("Let me ", key), reasoning("think.", key), text("Answer."), done()])
    assert [b["type"] for b in blocks(events)] == ["thinking", "text"]
    assert blocks(events)[0] == {"type": "thinking", "thinking": "", "signature": ""}
    signature_deltas = [d for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"]
    assert len(signature_deltas) == 1 and signature_deltas[0]["index"] == 0
    thinking = message["content"][0]
    assert thinking["thinking"] == "Let me think." and thinking["signature"].startswith("ccbridge:")


def test_openrouter_reasoning_details_are_read_when_plain_fields_are_absent() -> None:
    _, message = run([chunk({"reasoning_details": [{"type": "reasoning.text", "text": "hmm"}]}), text("ok"), done()])
    assert message["content"][0]["thinking"] == "hmm"


def test_interleaved_reasoning_after_text_opens_a_new_thinking_block() -> None:
    events, _ = run([reasoning("a"), text("b"), reasoning("c"), text("d"), done()])
    assert [b["type"] for b in blocks(events)] == ["thinking", "text", "thinking", "text"]


def test_thinking_can_be_turned_off() -> None:
    events, message = run([reasoning("secret"), text("Answer."), done()], emit_thinking=False)
    assert [b["type"] for b in message["content"]] == ["text"]
    assert b"secret" not in json.dumps(events).encode()


# --- endings ------------------------------------------------------------------------------------------


def test_stream_without_finish_reason_ends_with_an_error_not_end_turn() -> None:
    raw, translator = translate([text("Half an ans")], complete=False)
    events = events_of(raw)
    names = [n for n, _ in events]
    assert names[-1] == "error" and "message_delta" not in names and "message_stop" not in names
    assert events[-1][1]["error"]["type"] == "api_error"
    assert translator.error is not None


def test_fail_mid_stream_sends_an_error_event_and_nothing_after() -> None:
    translator = StreamTranslator(MODEL, "msg_test")
    raw = translator.feed(text("partial"))
    raw += translator.fail("overloaded_error", "provider overloaded")
    assert translator.feed(text("more")) == b"" and translator.finish() == b"" and translator.ping() == b""
    events = events_of(raw)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "provider overloaded"}},
    )


def test_ping_before_the_first_token_starts_the_message() -> None:
    translator = StreamTranslator(MODEL, "msg_test")
    events = events_of(translator.ping() + translator.ping())
    assert [n for n, _ in events] == ["message_start", "ping", "ping"]


def test_empty_completion_gets_a_placeholder_never_an_empty_block() -> None:
    _, message = run([chunk({"content": ""}), done("stop")])
    assert message["content"] == [{"type": "text", "text": EMPTY_REPLY}]


def test_empty_completion_can_be_an_error_instead() -> None:
    raw, translator = translate([done("stop")], empty_reply="error")
    assert events_of(raw)[-1][0] == "error"
    assert translator.error == ("api_error", "provider returned an empty response")


def test_chunks_after_the_end_are_dropped() -> None:
    raw, translator = translate([text("hi"), done()])
    assert translator.feed(text("late")) == b""
    assert raw.count(b"event: message_stop") == 1


# --- the anthropic SDK accepts the stream -------------------------------------------------------------


SDK_CASES = {
    "text": [text("Hello"), text(" there."), done(), usage(20, 3)],
    "thinking_text_tools": [
        reasoning("Plan."),
        text("Reading."),
        tool(0, "c1", "Read", '{"file_path":'),
        tool(0, args='"/a"}'),
        tool(1, "c2", "Grep", '{"pattern":"x"}'),
        done("tool_calls"),
        usage(900, 40, cached=800),
    ],
    "ollama_index_zero": [tool(0, "a", "Read", '{"p":1}'), tool(0, "b", "Read", '{"p":2}'), done("stop")],
    "no_usage_length": [text("cut"), done("length")],
}


def sdk_final_message(raw: bytes) -> anthropic.types.Message:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://anthropic.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
        return s.get_final_message()


@pytest.mark.parametrize("case", sorted(SDK_CASES))
def test_the_anthropic_sdk_accumulates_the_same_message(case: str) -> None:
    raw, translator = translate(SDK_CASES[case])
    check_grammar(events_of(raw))
    assert sdk_final_message(raw).model_dump(exclude_none=True) == {
        k: v for k, v in translator.message.items() if v is not None
    }


def test_the_anthropic_sdk_raises_the_mid_stream_error() -> None:
    translator = StreamTranslator(MODEL, "msg_test")
    raw = translator.feed(text("partial")) + translator.fail("overloaded_error", "provider overloaded")
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_final_message(raw)
    assert caught.value.body["error"]["type"] == "overloaded_error"


# --- shortened tool names -----------------------------------------------------------------------------

LONG_TOOL = "mcp__claude_ai_Company_Knowledge_Base__search_documents_by_semantic_similarity_with_filter"


def test_a_shortened_tool_name_is_restored_in_the_stream() -> None:
    short = "mcp__claude_ai_Company_Knowledge_Base__search_docu_0123456789"
    events, message = run(
        [tool(0, id="call_1", name=short, args='{"q":'), tool(0, args='"x"}'), tool(1, id="call_2", name="Read",
                                                                                    args="{}"), done("tool_calls")],
        tool_names={short: LONG_TOOL},
    )
    assert [b["name"] for b in blocks(events)] == [LONG_TOOL, "Read"]
    assert [b["name"] for b in message["content"]] == [LONG_TOOL, "Read"]
    assert message["content"][0]["input"] == {"q": "x"}
