"""SSE parsing in any chunking, and the reassembly of Anthropic messages."""

import json

import pytest

from ccbridge.sse import SSEParser, assemble_message, parse_events


def frame(event, data):
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


STREAM = b"".join([
    frame("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1,
                                       "cache_read_input_tokens": 5, "cache_creation_input_tokens": 2}}}),
    b": keepalive comment\n\n",
    frame("content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    frame("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
    frame("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "signature_delta", "signature": "sig=="}}),
    frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
    frame("content_block_start", {"type": "content_block_start", "index": 1,
                                  "content_block": {"type": "text", "text": ""}}),
    frame("content_block_delta", {"type": "content_block_delta", "index": 1,
                                  "delta": {"type": "text_delta", "text": "Hé "}}),
    frame("ping", {"type": "ping"}),
    frame("content_block_delta", {"type": "content_block_delta", "index": 1,
                                  "delta": {"type": "text_delta", "text": "là"}}),
    frame("content_block_stop", {"type": "content_block_stop", "index": 1}),
    frame("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}}),
    frame("content_block_delta", {"type": "content_block_delta", "index": 2,
                                  "delta": {"type": "input_json_delta", "partial_json": "{\"file_pa"}}),
    frame("content_block_delta", {"type": "content_block_delta", "index": 2,
                                  "delta": {"type": "input_json_delta", "partial_json": "th\": \"/a\"}"}}),
    frame("content_block_stop", {"type": "content_block_stop", "index": 2}),
    frame("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                            "usage": {"output_tokens": 42}}),
    frame("message_stop", {"type": "message_stop"}),
])


def expected_message():
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
            {"type": "text", "text": "Hé là"},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 42, "cache_read_input_tokens": 5,
                  "cache_creation_input_tokens": 2},
    }


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_any_chunking_gives_the_same_events(size):
    parser = SSEParser()
    events = []
    for i in range(0, len(STREAM), size):
        events.extend(parser.feed(STREAM[i : i + size]))
    assert [(e.event, e.data) for e in events] == [(e.event, e.data) for e in parse_events(STREAM)]
    assert len(events) == 16


def test_line_endings_comments_id_retry():
    events = parse_events(b"id: 7\r\nretry: 300\r\nevent: a\r\ndata: x\r\ndata: y\r\n\r\n: c\rdata: z\r\r")
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [("a", "x\ny", "7", 300), ("message", "z", None, None)]


def test_crlf_split_between_chunks():
    parser = SSEParser()
    got = parser.feed(b"data: a\r") + parser.feed(b"\n\r") + parser.feed(b"\ndata: b\n\n")
    assert [e.data for e in got] == ["a", "b"]


def test_assembles_thinking_text_and_tool_input():
    result = assemble_message(parse_events(STREAM))
    assert result.complete and not result.problems
    assert result.message == expected_message()


def test_cut_stream_keeps_what_arrived():
    cut = STREAM[: STREAM.index(b"th\\\": ")]  # inside the tool input
    result = assemble_message(parse_events(cut))
    assert not result.complete
    assert result.message["content"][1]["text"] == "Hé là"
    assert result.message["content"][2]["partial_input"] == '{"file_pa'


def test_error_event_is_kept():
    stream = frame("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    result = assemble_message(parse_events(stream))
    assert result.error == {"type": "overloaded_error", "message": "busy"}
    assert result.message is None


def test_a_long_stream_of_deltas_assembles_every_piece_in_order_with_fields_in_their_place():
    pieces = [f"{i}é," for i in range(20_000)]
    stream = b"".join([
        STREAM[: STREAM.index(b"event: content_block_start")],
        frame("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "thinking"}}),  # no thinking/signature field yet
        *(frame("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "thinking_delta", "thinking": p}}) for p in pieces),
        frame("content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "signature_delta", "signature": "s1"}}),
        frame("content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "signature_delta", "signature": "s2"}}),
        frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
        frame("message_stop", {"type": "message_stop"}),
    ])
    result = assemble_message(parse_events(stream))
    [block] = result.message["content"]
    assert list(block) == ["type", "thinking", "signature"]  # in the order the deltas brought them
    assert block["thinking"] == "".join(pieces) and block["signature"] == "s1s2"


def test_a_stream_with_cr_line_ends_only_parses_like_lf():
    assert [(e.event, e.data) for e in parse_events(STREAM.replace(b"\n", b"\r"))] == [
        (e.event, e.data) for e in parse_events(STREAM)]
