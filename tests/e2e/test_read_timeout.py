"""Upstream read timeout: a silent upstream ends the request with an Anthropic-shaped timeout error, and the
exchange is recorded with kind `timeout`. Real mitmdump with the addon, mock Anthropic, a 1 s timeout."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.mock_anthropic import (
    MockAnthropic,
    MockRequest,
    Reply,
    Stall,
    json_reply,
    message_events,
    message_json,
    sse_reply,
    text_block,
    text_reply,
)
from tests.support.proxy import start_proxy

pytestmark = pytest.mark.e2e

TIMEOUT = ["--set", "ccbridge_read_timeout_s=1"]


def body(stream: bool, text: str) -> dict:
    return {"model": "claude-opus-5-5", "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": text}]}


FRAMES = message_events([text_block("the first words, then silence")], piece=8, message_id="msg_stall")


def stalling(request: MockRequest) -> Reply:
    text = request.json()["messages"][0]["content"]
    if text == "stall before headers":
        return Reply(**{**json_reply(message_json([text_block("too late")])).__dict__, "held": 20})
    if text == "stall mid-stream":
        return sse_reply([*FRAMES[:4], Stall(20)])
    return text_reply(request)


def test_silence_before_the_response_headers_is_a_504_timeout_error(tmp_path: Path):
    with MockAnthropic(stalling) as mock, start_proxy(mock.url, tmp_path, extra_args=TIMEOUT) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            r = client.post("/v1/messages", json=body(False, "stall before headers"))
            assert r.status_code == 504
            assert r.json()["type"] == "error" and r.json()["error"]["type"] == "timeout_error"
            # the proxy goes on serving, on the same client connection
            after = client.post("/v1/messages", json=body(False, "fine"))
            assert after.status_code == 200 and after.json()["type"] == "message"
    assert "mitmproxy has crashed" not in proxy.log()
    stalled, fine = proxy.exchanges()
    assert stalled.error_kind == "timeout" and not stalled.complete and stalled.status_code == 504
    assert stalled.response_message == {"error": r.json()["error"]}
    assert fine.complete and fine.error_kind is None


def test_silence_in_the_middle_of_a_stream_ends_it_with_an_error_event(tmp_path: Path):
    with MockAnthropic(stalling) as mock, start_proxy(mock.url, tmp_path, extra_args=TIMEOUT) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            with client.stream("POST", "/v1/messages", json=body(True, "stall mid-stream")) as r:
                assert r.status_code == 200
                received = b"".join(r.iter_raw())  # ends cleanly: no protocol error
            assert client.post("/v1/messages", json=body(False, "fine")).status_code == 200
    assert received.startswith(b"".join(FRAMES[:4]))
    last = received[len(b"".join(FRAMES[:4])):]
    assert last.startswith(b"event: error\ndata: ") and last.endswith(b"\n\n")
    assert json.loads(last.split(b"data: ", 1)[1])["error"]["type"] == "timeout_error"
    assert "mitmproxy has crashed" not in proxy.log()
    stalled, fine = proxy.exchanges()
    assert stalled.is_sse and stalled.error_kind == "timeout" and not stalled.complete
    assert stalled.response_message["error"]["type"] == "timeout_error"
    assert stalled.response_message["id"]  # what arrived before the silence is kept
    assert fine.complete
