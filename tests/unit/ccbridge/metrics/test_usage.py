"""The answer's usage from its first and last events (or its JSON usage object), against the full parse."""

from __future__ import annotations

import gzip
import json

import pytest

from ccbridge.metrics.usage import answer_usage, json_usage, stream_usage
from ccbridge.prices import Tokens
from ccbridge.sse import assemble_message, parse_events
from tests.fixtures import all_requests
from tests.support.mock_anthropic import (
    gzipped,
    message_events,
    message_json,
    sse_reply,
    text_block,
    tool_use_block,
)

SSE = "text/event-stream; charset=utf-8"
MOCK_TOKENS = Tokens(input=2_095, output=42, cache_read=13_000, cache_write=1_536)
ANSWERS = {
    "text": [text_block("Hello there. " * 40)],
    "tool call": [text_block("Let me look."), tool_use_block("Agent", {"prompt": "review", "usage": "x"})],
    "mentions the events": [text_block('say "message_delta" and "usage": {"output_tokens": 9}')],
}


def full_parse_tokens(stream: bytes) -> Tokens:
    """What storage makes of the same stream: every event parsed and the message assembled."""
    return Tokens.of_usage(assemble_message(parse_events(stream)).message["usage"])


@pytest.mark.parametrize("name", ANSWERS)
def test_a_stream_gives_the_same_tokens_as_assembling_the_whole_message(name: str):
    stream = b"".join(message_events(ANSWERS[name], model="claude-opus-5-5"))
    found = answer_usage([stream], SSE)
    assert found is not None
    assert found.tokens == full_parse_tokens(stream) == MOCK_TOKENS
    assert found.model == "claude-opus-5-5"


def test_chunk_boundaries_do_not_matter():
    stream = b"".join(message_events(ANSWERS["text"]))
    chunks = [stream[i:i + 7] for i in range(0, len(stream), 7)]
    assert answer_usage(chunks, SSE) == answer_usage([stream], SSE)


def test_a_gzipped_stream_is_decoded_first():
    reply = gzipped(sse_reply(message_events(ANSWERS["text"])))
    found = answer_usage([item for item in reply.body if isinstance(item, bytes)], SSE, "gzip")
    assert found is not None and found.tokens == MOCK_TOKENS


def test_a_stream_cut_before_its_message_delta_keeps_what_message_start_said():
    frames = message_events(ANSWERS["text"])
    stream = b"".join(frames[:-2]) + frames[-2][:30]  # cut inside message_delta
    found = stream_usage(stream)
    assert found is not None
    assert found.tokens == Tokens(input=2_095, output=1, cache_read=13_000, cache_write=1_536)


def test_a_stream_cut_inside_message_start_or_before_it_has_no_usage():
    stream = b"".join(message_events(ANSWERS["text"]))
    assert stream_usage(stream[:40]) is None
    assert stream_usage(b"") is None


def test_the_final_delta_counts_win_over_message_start():
    # routed answers (translate/stream.py) start with zero usage and state it all in message_delta
    start = {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 0, "output_tokens": 0}}}
    delta = {"type": "message_delta", "delta": {}, "usage": {"input_tokens": 120, "output_tokens": 7,
                                                             "cache_read_input_tokens": None}}
    stream = (f"event: message_start\ndata: {json.dumps(start)}\n\n"
              f"event: message_delta\ndata: {json.dumps(delta)}\n\n").encode()
    assert stream_usage(stream) == stream_usage(stream.replace(b"\n", b"\r\n"))
    found = stream_usage(stream)
    assert found is not None and found.tokens == Tokens(input=120, output=7)


def test_non_json_and_other_bodies_have_no_usage():
    assert answer_usage([b"<html>502 Bad Gateway</html>"], "text/html") is None
    assert answer_usage([b"event: message_start\ndata: {not json\n\n"], SSE) is None
    assert answer_usage([b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'],
                        "application/json") is None
    assert answer_usage([b'{"input_tokens": 12}'], "application/json") is None  # count_tokens
    assert answer_usage([b"\x1f\x8b garbage"], "application/json", "gzip") is None


def test_a_json_answer_gives_its_usage_and_model():
    body = json.dumps(message_json(ANSWERS["tool call"], model="claude-haiku-5")).encode()
    found = json_usage(body)
    assert found is not None
    assert found.tokens == MOCK_TOKENS and found.model == "claude-haiku-5"
    encoded = gzip.compress(body)
    assert answer_usage([encoded[:10], encoded[10:]], "application/json", "gzip") == found


def test_a_tool_input_named_usage_is_not_taken_for_the_answer_usage():
    message = message_json([tool_use_block("t", {"usage": {"input_tokens": 999}, "note": "usage"})])
    message.pop("usage")
    message["usage"] = {"input_tokens": 5, "output_tokens": 6}
    found = json_usage(json.dumps(message).encode())
    assert found is not None and found.tokens == Tokens(input=5, output=6)


def test_requests_of_the_real_cli_are_not_answers():
    # a request body has no usage: metrics never count a request's bytes as tokens
    for _, request in all_requests():
        body = json.dumps(request["body"], separators=(",", ":")).encode()
        assert answer_usage([body], "application/json") is None
