"""A mock OpenAI Chat Completions server on 127.0.0.1:<free port>, in background threads.

It is the mock Anthropic server's machinery (raw sockets, every byte and pause scripted, every request
recorded) with OpenAI answers: `stream_reply(...)` writes `data: {chunk}` lines and `data: [DONE]`, with
`Pause`, `Cut` and `Stall` between them; `completion_reply(...)` is the non-streaming JSON;
`error_reply(...)` an OpenAI error with any status and headers (`retry-after`); `error_chunk(...)` the
`{"error": ...}` data line a server sends when it fails mid-stream. By default a request is answered from
`mock.script` (chunks), streamed or as one completion as the request asks, so both paths get the same
answer. `send_times` holds (exchange seq, perf_counter, bytes) for every body piece, stamped just before
it is written.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tests.support.mock_anthropic import (
    BodyItem,
    Cut,
    MockAnthropic,
    MockExchange,
    MockRequest,
    Pause,
    Reply,
    Stall,
    json_reply,
)

__all__ = ["ChunkItem", "Cut", "MockOpenAI", "Pause", "Stall", "answer", "chunk", "closed_port", "completion_of",
           "completion_reply", "error_chunk", "error_reply", "stream_reply", "text_chunks", "tool_call", "usage"]

MODEL = "gpt-mock"
ChunkItem = dict[str, Any] | Pause | Cut | Stall | bytes
_ids = itertools.count(1)


def chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, *,
          usage: dict[str, Any] | None = None, choices: bool = True, model: str = MODEL) -> dict[str, Any]:
    """One `chat.completion.chunk`; `choices=False` gives the usage-only final chunk (`choices: []`)."""
    body: dict[str, Any] = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_800_000_000,
                            "model": model, "choices": []}
    if choices:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    if usage is not None:
        body["usage"] = usage
    return body


def text_chunks(*pieces: str) -> list[dict[str, Any]]:
    return [chunk({"role": "assistant", "content": ""}), *(chunk({"content": p}) for p in pieces)]


def tool_call(index: int, *, call_id: str | None = None, name: str | None = None,
              arguments: str | None = None) -> dict[str, Any]:
    """One `tool_calls[]` item of a delta."""
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    item: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        item.update(id=call_id, type="function")
    return item


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def error_chunk(message: str, error_type: str = "server_error") -> bytes:
    return b"data: " + json.dumps({"error": {"message": message, "type": error_type, "code": None}}).encode() + b"\n\n"


def stream_reply(items: Iterable[ChunkItem], *, done: bool = True) -> Reply:
    """An SSE answer: each chunk dict is one `data:` line, written with its own send."""
    body: list[BodyItem] = []
    for item in items:
        body.append(b"data: " + json.dumps(item).encode() + b"\n\n" if isinstance(item, dict) else item)
    if done:
        body.append(b"data: [DONE]\n\n")
    return Reply(200, [("content-type", "text/event-stream")], body, framing="chunked")


def completion_of(chunks: Sequence[ChunkItem]) -> dict[str, Any]:
    """The non-streaming `chat.completion` carrying the same answer as `chunks`."""
    content, reasoning = "", ""
    calls: list[dict[str, Any]] = []
    current: dict[Any, dict[str, Any]] = {}  # upstream index -> the call it continues
    finish, found_usage, model = None, None, MODEL
    for item in chunks:
        if not isinstance(item, dict):
            continue
        model = item.get("model", model)
        found_usage = item.get("usage") or found_usage
        for choice in item.get("choices") or []:
            delta = choice.get("delta") or {}
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            finish = choice.get("finish_reason") or finish
            for part in delta.get("tool_calls") or []:
                call = current.get(part.get("index"))
                if call is None or (part.get("id") and part["id"] != call["id"]):
                    call = {"id": part.get("id"), "type": "function", "function": {"name": "", "arguments": ""}}
                    calls.append(call)
                    current[part.get("index")] = call
                function = part.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return {"id": f"chatcmpl-mock{next(_ids)}", "object": "chat.completion", "created": 1_800_000_000,
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            **({"usage": found_usage} if found_usage else {})}


def completion_reply(chunks: Sequence[ChunkItem]) -> Reply:
    return json_reply(completion_of(chunks))


def error_reply(status: int, message: str, *, error_type: str = "invalid_request_error", code: str | None = None,
                headers: Iterable[tuple[str, str]] = ()) -> Reply:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return json_reply(body, status, headers)


class MockOpenAI(MockAnthropic):
    """The mock server. `script`: the chunks the default handler answers with; or set `handler`."""

    def __init__(self, handler: Callable[[MockRequest], Reply] | None = None) -> None:
        super().__init__(handler or self.default_reply)
        self.script: list[ChunkItem] = [*text_chunks("Hello from the mock OpenAI server."),
                                        chunk(finish_reason="stop", usage=usage(10, 8))]
        self.send_times: list[tuple[int, float, bytes]] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def default_reply(self, request: MockRequest) -> Reply:
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return error_reply(404, f"no route {request.method} {request.path}", error_type="not_found")
        return answer(request, self.script)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The bodies of the Chat Completions requests received, in order."""
        return [r.json() for r in self.requests if r.method == "POST" and r.path == "/v1/chat/completions"]

    def _send(self, sock: socket.socket, exchange: MockExchange, data: bytes, *, entity: bool,
              entity_bytes: bytes = b"") -> None:
        if entity:
            self.send_times.append((exchange.seq, time.perf_counter(), entity_bytes))
        super()._send(sock, exchange, data, entity=entity, entity_bytes=entity_bytes)


def answer(request: MockRequest, chunks: Sequence[ChunkItem]) -> Reply:
    """`chunks` as the request asks: streamed, or as one completion."""
    body = request.json()
    if isinstance(body, dict) and body.get("stream"):
        return stream_reply(chunks)
    return completion_reply(chunks)


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
