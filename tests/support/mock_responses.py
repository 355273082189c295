"""A mock OpenAI Responses API (`POST /v1/responses`) on 127.0.0.1:<free port>, in background threads.

The mock OpenAI server's machinery with Responses answers. A scripted answer is a list of stream events (plain
dicts, as the API sends them) with `Pause`, `Cut` and `Stall` between them: streamed, each event is one
`event: <type>` + `data:` frame; not streamed, the answer is the `response` object of the script's terminal
event (`response.completed`, `.incomplete` or `.failed`), so both paths carry the same answer.

`events(...)` builds the full, realistic event sequence of a response from its output items (`message`,
`function_call`, `reasoning`), each split into the deltas given; scripts for odd servers are written by
hand. `error_reply` (from mock_openai) gives an HTTP error before the first byte.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tests.support.mock_anthropic import BodyItem, MockRequest, Reply, json_reply
from tests.support.mock_openai import Cut, MockOpenAI, Pause, Stall, error_reply

__all__ = ["Cut", "EventItem", "MockResponses", "Pause", "Stall", "answer", "error_event", "error_reply", "events",
           "failed", "function_call", "message", "reasoning", "response_of", "stream_reply", "usage"]

MODEL = "gpt-mock"
EventItem = dict[str, Any] | Pause | Cut | Stall | bytes
_ids = itertools.count(1)


# --- output items: what a response says, and how its deltas are split --------------------------------


def message(*pieces: str) -> dict[str, Any]:
    """An assistant message whose text arrives in these deltas."""
    return {"type": "message", "pieces": list(pieces)}


def function_call(call_id: str, name: str, *pieces: str) -> dict[str, Any]:
    """A function call whose arguments arrive in these deltas (none: only in the `.done` events)."""
    return {"type": "function_call", "call_id": call_id, "name": name, "pieces": list(pieces)}


def reasoning(*summary_parts: Sequence[str]) -> dict[str, Any]:
    """A reasoning item: each summary part is a list of deltas."""
    return {"type": "reasoning", "parts": [list(p) for p in summary_parts]}


def usage(input_tokens: int, output_tokens: int, cached: int = 0, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens}


def events(*items: dict[str, Any], usage: dict[str, Any] | None = None, status: str = "completed",
           incomplete_reason: str | None = None, model: str = MODEL) -> list[dict[str, Any]]:
    """The event sequence of a response with these output items, ending in its terminal event."""
    number = next(_ids)
    out: list[dict[str, Any]] = []
    response = _response(number, model, "in_progress", [], None)
    out += [{"type": "response.created", "response": response}, {"type": "response.in_progress", "response": response}]
    finished: list[dict[str, Any]] = []
    for index, spec in enumerate(items):
        item_events, item = _item_events(spec, index, f"{number}_{index}")
        out += item_events
        finished.append(item)
    final = _response(number, model, status, finished, usage)
    if status == "incomplete":
        final["incomplete_details"] = {"reason": incomplete_reason or "max_output_tokens"}
    out.append({"type": f"response.{status}", "response": final})
    return _numbered(out)


def failed(code: str, text: str, *items: dict[str, Any]) -> list[dict[str, Any]]:
    """A response that fails after these items, with `response.failed`."""
    script = events(*items)[:-1]
    response = _response(0, MODEL, "failed", [], None)
    response["error"] = {"code": code, "message": text}
    return _numbered([*script, {"type": "response.failed", "response": response}])


def error_event(text: str, code: str = "server_error") -> dict[str, Any]:
    """The `error` event a server sends when it fails mid-stream."""
    return {"type": "error", "code": code, "message": text, "param": None, "sequence_number": 0}


def _item_events(spec: dict[str, Any], index: int, suffix: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    kind = spec["type"]
    at = {"output_index": index}
    if kind == "message":
        item_id = f"msg_{suffix}"
        text = "".join(spec["pieces"])
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {"type": "message", "id": item_id, "role": "assistant", "status": "completed", "content": [part]}
        ref = {**at, "item_id": item_id, "content_index": 0}
        out = [{"type": "response.output_item.added", **at, "item": {**item, "status": "in_progress", "content": []}},
               {"type": "response.content_part.added", **ref, "part": {**part, "text": ""}},
               *({"type": "response.output_text.delta", **ref, "delta": p, "logprobs": []} for p in spec["pieces"]),
               {"type": "response.output_text.done", **ref, "text": text, "logprobs": []},
               {"type": "response.content_part.done", **ref, "part": part},
               {"type": "response.output_item.done", **at, "item": item}]
        return out, item
    if kind == "function_call":
        item_id = f"fc_{suffix}"
        arguments = "".join(spec["pieces"])
        item = {"type": "function_call", "id": item_id, "call_id": spec["call_id"], "name": spec["name"],
                "arguments": arguments, "status": "completed"}
        ref = {**at, "item_id": item_id}
        out = [{"type": "response.output_item.added", **at, "item": {**item, "arguments": "", "status": "in_progress"}},
               *({"type": "response.function_call_arguments.delta", **ref, "delta": p} for p in spec["pieces"]),
               {"type": "response.function_call_arguments.done", **ref, "arguments": arguments, "name": spec["name"]},
               {"type": "response.output_item.done", **at, "item": item}]
        return out, item
    item_id = f"rs_{suffix}"
    summary = [{"type": "summary_text", "text": "".join(p)} for p in spec["parts"]]
    item = {"type": "reasoning", "id": item_id, "summary": summary, "status": "completed"}
    out = [{"type": "response.output_item.added", **at, "item": {**item, "summary": []}}]
    for number, part in enumerate(spec["parts"]):
        ref = {**at, "item_id": item_id, "summary_index": number}
        out += [{"type": "response.reasoning_summary_part.added", **ref, "part": {"type": "summary_text", "text": ""}},
                *({"type": "response.reasoning_summary_text.delta", **ref, "delta": d} for d in part),
                {"type": "response.reasoning_summary_text.done", **ref, "text": "".join(part)},
                {"type": "response.reasoning_summary_part.done", **ref, "part": summary[number]}]
    out.append({"type": "response.output_item.done", **at, "item": item})
    return out, item


def _response(number: int, model: str, status: str, output: list[dict[str, Any]],
              usage: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": f"resp_mock{number}", "object": "response", "created_at": 1_800_000_000, "status": status,
            "model": model, "output": output, "usage": usage, "error": None, "incomplete_details": None,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "store": False}


def _numbered(script: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**event, "sequence_number": n} for n, event in enumerate(script)]


# --- answers ------------------------------------------------------------------------------------------


def stream_reply(items: Iterable[EventItem]) -> Reply:
    """An SSE answer: each event dict is one `event:` + `data:` frame, written with its own send."""
    body: list[BodyItem] = []
    for item in items:
        if isinstance(item, dict):
            body.append(f"event: {item['type']}\ndata: {json.dumps(item)}\n\n".encode())
        else:
            body.append(item)
    return Reply(200, [("content-type", "text/event-stream")], body, framing="chunked")


def response_of(script: Sequence[EventItem]) -> dict[str, Any]:
    """The non-streamed `Response` carrying the same answer as `script`: its terminal event's response."""
    terminal = ("response.completed", "response.incomplete", "response.failed")
    return next(e["response"] for e in reversed(script) if isinstance(e, dict) and e.get("type") in terminal)


def answer(request: MockRequest, script: Sequence[EventItem]) -> Reply:
    """`script` as the request asks: streamed, or as one response object."""
    body = request.json()
    if isinstance(body, dict) and body.get("stream"):
        return stream_reply(script)
    return json_reply(response_of(script))


class MockResponses(MockOpenAI):
    """The mock server. `script`: the events the default handler answers with; or set `handler`."""

    def __init__(self, handler: Callable[[MockRequest], Reply] | None = None) -> None:
        super().__init__(handler or self.default_reply)
        self.script: list[EventItem] = events(message("Hello from the mock Responses server."), usage=usage(10, 8))

    def default_reply(self, request: MockRequest) -> Reply:
        if request.method != "POST" or request.path != "/v1/responses":
            return error_reply(404, f"no route {request.method} {request.path}", error_type="not_found")
        return answer(request, self.script)

    @property
    def responses_requests(self) -> list[dict[str, Any]]:
        """The bodies of the Responses requests received, in order."""
        return [r.json() for r in self.requests if r.method == "POST" and r.path == "/v1/responses"]
