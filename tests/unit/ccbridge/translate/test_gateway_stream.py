"""Anthropic SSE streams -> OpenAI chat.completion.chunk streams, checked with the `openai` SDK's own parsing."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from ccbridge.sse import parse_events
from ccbridge.translate.gateway_answer import ChunkStream
from tests.support.mock_anthropic import message_events, sse_event, text_block, tool_use_block, usage

MODEL = "claude-sonnet-5-5"
TEXT = "Hello! Here is a streamed answer, with ünïcödé and a few pieces."
PARALLEL = b"".join(message_events([
    text_block("Checking both cities."),
    tool_use_block("get_weather", {"city": "Paris", "unit": "celsius"}, "toolu_paris"),
    tool_use_block("get_weather", {"city": "Zürich", "unit": "celsius"}, "toolu_zurich"),
], model=MODEL, piece=8))


def stream(include_usage: bool = False) -> ChunkStream:
    return ChunkStream(model=MODEL, completion_id="chatcmpl-7", created=1_700_000_000, include_usage=include_usage)


def translate(data: bytes, *, include_usage: bool = False, splits: list[int] | None = None) -> bytes:
    chunks = stream(include_usage)
    cuts = [0, *(splits or []), len(data)]
    out = b"".join(chunks.feed(data[a:b]) for a, b in itertools.pairwise(cuts))
    return out + chunks.finish()


def payloads(output: bytes) -> list[Any]:
    """The JSON of each `data:` line, `[DONE]` as the string itself."""
    return [event.data if event.data == "[DONE]" else json.loads(event.data) for event in parse_events(output)]


def chunks_of(output: bytes) -> list[ChatCompletionChunk]:
    return [ChatCompletionChunk.model_validate(p) for p in payloads(output) if p != "[DONE]"]


def deltas(output: bytes) -> list[dict[str, Any]]:
    return [p["choices"][0]["delta"] for p in payloads(output) if p != "[DONE]" and p["choices"]]


def block(index: int, start: dict[str, Any], *pieces: dict[str, Any]) -> list[bytes]:
    """The frames of one content block: its start, one delta per piece, its stop."""
    return [sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
            *(sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": piece})
              for piece in pieces),
            sse_event("content_block_stop", {"type": "content_block_stop", "index": index})]


def thinking_stream() -> bytes:
    """A streamed answer with extended thinking, shaped as the Messages API sends it."""
    start = sse_event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": usage(input_tokens=20, output_tokens=1, cache_read=0, cache_creation=0)}})
    thinking = block(0, {"type": "thinking", "thinking": "", "signature": ""},
                     {"type": "thinking_delta", "thinking": "Two plus "},
                     {"type": "thinking_delta", "thinking": "two is four."},
                     {"type": "signature_delta", "signature": "EqQBCkgIAR"})
    answer = block(1, {"type": "text", "text": ""}, {"type": "text_delta", "text": "4"})
    end = [sse_event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                       "stop_sequence": None}, "usage": {"output_tokens": 30}}),
           sse_event("message_stop", {"type": "message_stop"})]
    return b"".join([start, *thinking, *answer, *end])


# --- the chunks -------------------------------------------------------------------------------------


def test_a_text_stream_becomes_content_deltas_after_a_role_chunk() -> None:
    output = translate(b"".join(message_events([text_block(TEXT)], model=MODEL)))
    found = deltas(output)
    assert found[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in found) == TEXT
    assert [p["choices"][0]["finish_reason"] for p in payloads(output)[:-1]][-1] == "stop"
    assert output.endswith(b"data: [DONE]\n\n")
    assert all(c.id == "chatcmpl-7" and c.model == MODEL and c.object == "chat.completion.chunk"
               for c in chunks_of(output))


def test_the_role_chunk_goes_out_as_soon_as_the_message_starts() -> None:
    first_event = message_events([text_block(TEXT)], model=MODEL)[0]
    assert deltas(stream().feed(first_event)) == [{"role": "assistant", "content": ""}]
    assert stream().feed(first_event[:-1]) == b""  # the event is not complete yet


def test_two_parallel_tool_calls_keep_indexes_zero_and_one() -> None:
    found = deltas(translate(PARALLEL))
    starts = [c for d in found for c in d.get("tool_calls", []) if "id" in c]
    assert starts == [
        {"index": 0, "id": "toolu_paris", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "toolu_zurich", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    arguments = ["", ""]
    for d in found:
        for c in d.get("tool_calls", []):
            arguments[c["index"]] += c["function"]["arguments"]
    assert [json.loads(a) for a in arguments] == [{"city": "Paris", "unit": "celsius"},
                                                  {"city": "Zürich", "unit": "celsius"}]
    assert payloads(translate(PARALLEL))[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_any_split_gives_the_same_chunks_as_the_whole_stream() -> None:
    whole = translate(PARALLEL)
    for cut in range(1, len(PARALLEL)):
        assert translate(PARALLEL, splits=[cut]) == whole, cut
    assert translate(PARALLEL, splits=list(range(1, len(PARALLEL)))) == whole


def test_thinking_becomes_reasoning_content_deltas() -> None:
    found = deltas(translate(thinking_stream()))
    assert "".join(d.get("reasoning_content", "") for d in found) == "Two plus two is four."
    assert "".join(d.get("content", "") for d in found) == "4"
    assert not any("signature" in json.dumps(d) for d in found)


def test_pings_add_nothing() -> None:
    ping = sse_event("ping", {"type": "ping"})
    with_pings = b"".join(frame + ping for frame in message_events([text_block(TEXT)], model=MODEL))
    assert translate(with_pings) == translate(b"".join(message_events([text_block(TEXT)], model=MODEL)))


def test_usage_chunk_with_empty_choices_comes_last_when_asked_for() -> None:
    output = translate(b"".join(message_events([text_block(TEXT)], model=MODEL, output_tokens=42)),
                       include_usage=True)
    *_, last, done = payloads(output)
    assert done == "[DONE]"
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 2_095 + 13_000 + 1_536, "completion_tokens": 42,
                             "total_tokens": 2_095 + 13_000 + 1_536 + 42,
                             "prompt_tokens_details": {"cached_tokens": 13_000}}
    assert not any(p != "[DONE]" and "usage" in p for p in payloads(translate(PARALLEL)))


def test_a_mid_stream_error_event_ends_with_one_error_line_then_done() -> None:
    frames = message_events([text_block(TEXT)], model=MODEL)
    broken = b"".join(frames[:4]) + sse_event("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}) + b"".join(frames[4:])
    found = payloads(translate(broken, include_usage=True))
    assert found[-2:] == [{"error": {"message": "Overloaded", "type": "server_error", "param": None,
                                     "code": "overloaded"}}, "[DONE]"]
    assert sum(1 for p in found if "error" in p) == 1


def test_a_stream_cut_short_ends_with_an_error_not_a_finish() -> None:
    frames = message_events([text_block(TEXT)], model=MODEL)
    found = payloads(translate(b"".join(frames[:5])))
    assert found[-1] == "[DONE]"
    assert found[-2]["error"]["type"] == "server_error"
    assert all(p["choices"][0]["finish_reason"] is None for p in found[:-2])


def test_finish_is_said_once() -> None:
    chunks = stream()
    chunks.feed(PARALLEL)
    assert chunks.finish().endswith(b"data: [DONE]\n\n")
    assert chunks.finish() == b"" and chunks.feed(PARALLEL) == b""


# --- the openai SDK reads it ------------------------------------------------------------------------


def test_every_chunk_validates_and_the_sdk_accumulator_rebuilds_the_answer() -> None:
    state = ChatCompletionStreamState()
    for chunk in chunks_of(translate(PARALLEL, include_usage=True)):
        state.handle_chunk(chunk)
    completion = state.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Checking both cities."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []] == [
        ("toolu_paris", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("toolu_zurich", "get_weather", {"city": "Zürich", "unit": "celsius"}),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens == 42


def sdk_client(body: bytes) -> openai.OpenAI:
    transport = httpx.MockTransport(lambda request: httpx.Response(
        200, content=body, headers={"content-type": "text/event-stream"}))
    return openai.OpenAI(api_key="sk-ccb-test", base_url="http://gateway.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=transport))


def test_the_sdks_stream_helper_reads_a_translated_thinking_stream() -> None:
    client = sdk_client(translate(thinking_stream(), include_usage=True))
    with client.chat.completions.stream(model="sonnet", messages=[{"role": "user", "content": "2+2?"}],
                                        stream_options={"include_usage": True}) as events:
        completion = events.get_final_completion()
    assert completion.choices[0].message.content == "4"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (20, 30)


def test_the_sdk_raises_its_api_error_for_a_mid_stream_error() -> None:
    frames = message_events([text_block(TEXT)], model=MODEL)
    broken = b"".join(frames[:4]) + sse_event("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}})
    received: list[str] = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        for chunk in sdk_client(translate(broken)).chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": "x"}], stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == TEXT[:12]
