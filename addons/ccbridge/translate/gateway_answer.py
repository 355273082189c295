"""Anthropic Messages answers -> OpenAI Chat Completions answers, for the gateway (pure, no I/O).

`chat_completion` translates a whole message, `ChunkStream` a stream as its bytes arrive, `openai_error` an
upstream error body. Thinking comes back as `reasoning_content` on the message or delta: not part of OpenAI's
API, but the field DeepSeek, vLLM and LiteLLM use, which clients such as Cline and Roo Code show.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ccbridge.sse import Event, SSEParser

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type -> (OpenAI error type, code), as OpenAI's own API writes them: it reports most client
# errors as invalid_request_error with a code, rate limits with the type "requests" and failures as server_error.
_ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "rate_limit_error": ("requests", "rate_limit_exceeded"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
    "timeout_error": ("server_error", "timeout"),
}
_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
              404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
DONE = b"data: [DONE]\n\n"


def chat_completion(message: dict[str, Any], *, model: str, completion_id: str, created: int) -> dict[str, Any]:
    """The `chat.completion` object for an Anthropic Messages response."""
    content = [b for b in message.get("content") or [] if isinstance(b, dict)]
    text = "".join(b.get("text") or "" for b in content if b.get("type") == "text")
    thinking = "".join(b.get("thinking") or "" for b in content if b.get("type") == "thinking")
    calls = [
        {"id": b.get("id"), "type": "function",
         "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False)}}
        for b in content if b.get("type") == "tool_use"
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    if thinking:
        reply["reasoning_content"] = thinking
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason(message.get("stop_reason")),
                     "logprobs": None}],
        "usage": openai_usage(message.get("usage") or {}),
    }


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's finish_reason for an Anthropic stop_reason (an unknown one reads as a normal stop)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Chat Completions usage: OpenAI counts cached prompt tokens inside prompt_tokens."""
    cache_read = _count(usage, "cache_read_input_tokens")
    prompt = _count(usage, "input_tokens") + cache_read + _count(usage, "cache_creation_input_tokens")
    completion = _count(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    }


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


# --- streams ----------------------------------------------------------------------------------------


class ChunkStream:
    """Anthropic SSE bytes in any split -> OpenAI `chat.completion.chunk` lines, as they become complete."""

    def __init__(self, *, model: str, completion_id: str, created: int, include_usage: bool) -> None:
        self._head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self.include_usage = include_usage
        self._parser = SSEParser()
        self._tools: dict[int, int] = {}  # Anthropic content index -> tool call index
        self._usage: dict[str, Any] = {}
        self._started = False
        self.finish_reason: str | None = None
        self.failed = False
        self._done = False

    def feed(self, data: bytes) -> bytes:
        """The chunk lines completed by `data` (b"" if none yet)."""
        if self._done:
            return b""
        return b"".join(self._event(event) for event in self._parser.feed(data))

    def finish(self) -> bytes:
        """The rest: an error if the answer was cut short, the usage chunk if asked for, then `[DONE]`."""
        if self._done:
            return b""
        out = b"".join(self._event(event) for event in self._parser.feed(b"\n\n"))
        if not self.failed and self.finish_reason is None:
            out += self._error(openai_error(502, None, message="the upstream stream ended before the answer was "
                                                               "complete"))
        if self.include_usage and not self.failed:
            out += _line({**self._head, "choices": [], "usage": openai_usage(self._usage)})
        self._done = True
        return out + DONE

    def _event(self, event: Event) -> bytes:
        if self.failed:
            return b""
        try:
            payload = event.json() if event.data else {}
        except ValueError:
            return b""
        if not isinstance(payload, dict):
            return b""
        kind = payload.get("type", event.event)
        if kind == "message_start":
            self._usage.update((payload.get("message") or {}).get("usage") or {})
            return self._start()
        if kind == "content_block_start":
            return self._start() + self._block_start(payload.get("index"), payload.get("content_block") or {})
        if kind == "content_block_delta":
            return self._delta(payload.get("index"), payload.get("delta") or {})
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})
            stop_reason = (payload.get("delta") or {}).get("stop_reason")
            if stop_reason is None or self.finish_reason is not None:
                return b""
            self.finish_reason = finish_reason(stop_reason)
            return self._start() + self._chunk({}, finish=self.finish_reason)
        if kind == "error":
            error = payload["error"] if isinstance(payload.get("error"), dict) else payload
            return self._error(openai_error(_status_of(error.get("type")), {"error": error}))
        return b""  # ping, message_stop, and events added to the API later

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, index: Any, block: dict[str, Any]) -> bytes:
        kind = block.get("type")
        if kind == "tool_use" and isinstance(index, int):
            position = self._tools[index] = len(self._tools)
            call = {"index": position, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}
            return self._chunk({"tool_calls": [call]})
        if kind == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        return b""  # thinking arrives in deltas; server tools and redacted thinking have no OpenAI form

    def _delta(self, index: Any, delta: dict[str, Any]) -> bytes:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": delta["text"]})
        if kind == "thinking_delta" and delta.get("thinking"):
            return self._chunk({"reasoning_content": delta["thinking"]})
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tools:
            call = {"index": self._tools[index], "function": {"arguments": delta["partial_json"]}}
            return self._chunk({"tool_calls": [call]})
        return b""  # signature and citation deltas

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None) -> bytes:
        return _line({**self._head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                                 "logprobs": None}]})

    def _error(self, body: dict[str, Any]) -> bytes:
        self.failed = True
        return _line(body)


def _line(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _status_of(anthropic_type: Any) -> int:
    return next((status for status, kind in _BY_STATUS.items() if kind == anthropic_type), 500)


# --- errors and models ------------------------------------------------------------------------------


def openai_error(status: int, body: bytes | dict[str, Any] | None, *, message: str | None = None) -> dict[str, Any]:
    """An upstream error (Anthropic's shape, OpenAI's, or any body) in OpenAI's `{"error": {...}}` shape."""
    parsed: Any = body
    if isinstance(body, bytes | bytearray):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", errors="replace").strip()[:1000]
    inner = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(inner, dict) and ("param" in inner or "code" in inner):
        # already OpenAI's shape (a routed OpenAI-compatible provider): keep its own type and code
        return {"error": {"message": str(inner.get("message") or ""), "type": inner.get("type") or "server_error",
                          "param": inner.get("param"), "code": inner.get("code")}}
    anthropic_type = inner.get("type") if isinstance(inner, dict) else None
    if isinstance(inner, dict) and inner.get("message"):
        text = str(inner["message"])
    elif isinstance(parsed, str) and parsed:
        text = parsed
    else:
        text = f"upstream answered HTTP {status}"
    kind, code = _ERROR_TYPES.get(anthropic_type or "") or _by_status(status)
    return {"error": {"message": message or text, "type": kind, "param": None, "code": code}}


def error_body(status: int, message: str, *, type: str, code: str | None = None) -> dict[str, Any]:
    """The gateway's own refusal in OpenAI's shape; without `code`, the one OpenAI uses for `status`."""
    return {"error": {"message": message, "type": type, "param": None, "code": code or _by_status(status)[1]}}


def client_status(upstream_status: int) -> int:
    """The status to answer the client with for an upstream error status.

    Anthropic refusing the gateway's own credential (401/403) is not the client's fault: 502. Its
    "overloaded" 529 becomes 503, which OpenAI clients know to retry.
    """
    if upstream_status in (401, 403):
        return 502
    return 503 if upstream_status == 529 else upstream_status


def _by_status(status: int) -> tuple[str, str | None]:
    if status in _BY_STATUS:
        return _ERROR_TYPES[_BY_STATUS[status]]
    return _ERROR_TYPES["api_error"] if status >= 500 else _ERROR_TYPES["invalid_request_error"]


def models_list(ids: list[str], *, owned_by: dict[str, str] | None = None) -> dict[str, Any]:
    """The `/v1/models` body; a `PROVIDER/MODEL` id is owned by its provider, any other by Anthropic."""
    owners = owned_by or {}
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 0,
             "owned_by": owners.get(model) or (model.split("/", 1)[0] if "/" in model else "anthropic")}
            for model in ids
        ],
    }
