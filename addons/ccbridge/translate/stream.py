"""OpenAI Chat Completions stream chunks -> Anthropic Messages server-sent events.

`StreamTranslator` is an incremental state machine fed one `ChatCompletionChunk` (as a plain dict) at a
time. It keeps the grammar the Anthropic SDK relies on: one `message_start`; content blocks indexed
0, 1, 2... in start order, one open at a time, never an empty text block; tool input only through
`input_json_delta`; one `message_delta` (stop reason and cumulative usage) just before `message_stop`.
Its `message` property is the final Anthropic message. A non-streaming completion is replayed through the
same machine as one chunk (`whole`), so the JSON path gives exactly the message the SSE path would (Claude
Code falls back to non-streaming after a stream error).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ccbridge.translate.errors import error_frame
from ccbridge.translate.request import PROXY_SIGNATURE_PREFIX
from ccbridge.translate.sse_out import frame

EMPTY_REPLY = "(the model returned an empty response)"
_UNSAFE_ID = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass
class _ToolCall:
    ordinal: int
    key: int | None  # the upstream `index`, when it sends one
    upstream_id: str | None
    name: str | None = None
    arguments: str = ""
    block: int | None = None  # Anthropic content index once its block is opened
    closed: bool = False


class IncompleteAnswer(ValueError):
    """The answer cannot be returned as a message; answer with an error of `error_type` instead."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class StreamTranslator:
    """Feed chunks, then `finish()` (or `fail()`); every method returns the SSE bytes to send on."""

    def __init__(
        self,
        requested_model: str,
        message_id: str,
        *,
        input_tokens_estimate: int = 0,
        stop_sequences: Sequence[str] = (),
        emit_thinking: bool = True,
        empty_reply: Literal["placeholder", "error"] = "placeholder",
        tool_names: Mapping[str, str] | None = None,
    ) -> None:
        self.requested_model = requested_model
        self.tool_names = dict(tool_names or {})  # the provider's name -> Claude Code's (`original_tool_names`)
        self.message_id = message_id
        self.input_tokens_estimate = input_tokens_estimate
        self.stop_sequences = tuple(stop_sequences)
        self.emit_thinking = emit_thinking
        self.empty_reply = empty_reply
        self._buf: list[bytes] = []
        self._content: list[dict[str, Any]] = []
        self._open: int | None = None
        self._calls: list[_ToolCall] = []
        self._by_key: dict[int, _ToolCall] = {}
        self._live: _ToolCall | None = None
        self._whitespace = ""  # text held back until something non-blank follows
        self._finish_reason: str | None = None
        self._matched_stop: str | None = None
        self._refused = False
        self._usage: Mapping[str, Any] | None = None
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._final_usage = _zero_usage()
        self.started = False
        self.finished = False
        self.error: tuple[str, str] | None = None  # (error type, message) once `fail()` ended the stream

    # --- public API ---------------------------------------------------------------------------------

    @property
    def message(self) -> dict[str, Any]:
        """The Anthropic message as sent so far; complete after `finish()`."""
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.requested_model,
            "content": copy.deepcopy(self._content),
            "stop_reason": self._stop_reason,
            "stop_sequence": self._stop_sequence,
            "usage": dict(self._final_usage),
        }

    def start(self) -> bytes:
        """`message_start`; sent once, before anything else (the other methods call it when needed)."""
        self._begin()
        return self._drain()

    def ping(self) -> bytes:
        if self.finished:
            return b""
        self._begin()
        self._emit("ping", {"type": "ping"})
        return self._drain()

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        if self.finished:
            return b""
        self._begin()
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:  # n > 1 is never requested; ignore stray choices
                self._choice(choice)
        return self._drain()

    def finish(self, complete: bool = True) -> bytes:
        """End the message. `complete=False` says the upstream stream broke (an exception, not its end).

        Without a finish_reason the answer may be cut short, so an `error` event is sent instead of
        a made-up `end_turn`; the client then retries.
        """
        if self.finished:
            return b""
        if self._finish_reason is None:
            why = "ended" if complete else "broke off"
            return self.fail("api_error", f"provider stream {why} before the answer was complete")
        self._begin()
        self._close_all()
        if not any(b["type"] in ("text", "tool_use") for b in self._content):
            if self.empty_reply == "error":
                return self.fail("api_error", "provider returned an empty response")
            self._open_block({"type": "text", "text": ""})
            self._text_delta(EMPTY_REPLY)
            self._close_block()
        self._stop_reason, self._stop_sequence = self._stop()
        self._final_usage = self._anthropic_usage()
        delta = {"stop_reason": self._stop_reason, "stop_sequence": self._stop_sequence}
        self._emit("message_delta", {"type": "message_delta", "delta": delta, "usage": self._final_usage})
        self._emit("message_stop", {"type": "message_stop"})
        self.finished = True
        return self._drain()

    def whole(self, completion: Mapping[str, Any]) -> dict[str, Any]:
        """The Anthropic message for a non-streamed `completion` (a `ChatCompletion.model_dump()`).

        Raises `IncompleteAnswer` where the stream would end with an error event: no finish_reason, or an
        empty answer under `empty_reply="error"`.
        """
        self.feed(as_chunk(completion))
        self.finish()
        if self.error is not None:
            raise IncompleteAnswer(*self.error)
        return self.message

    def fail(self, error_type: str, message: str) -> bytes:
        """An `error` event ending the stream (the SDK raises it as an APIError)."""
        if self.finished:
            return b""
        self.finished = True
        self.error = (error_type, message)
        return self._drain() + error_frame(error_type, message)

    def _begin(self) -> None:
        if not self.started:
            self.started = True
            start = {**self.message, "usage": _zero_usage()}
            self._emit("message_start", {"type": "message_start", "message": start})

    # --- one choice of one chunk --------------------------------------------------------------------

    def _choice(self, choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta") or {}
        self._reasoning(_reasoning_text(delta))
        if delta.get("content"):
            self._text(delta["content"])
        if delta.get("refusal"):
            self._refused = True
            self._text(delta["refusal"])
        for item in delta.get("tool_calls") or []:
            self._tool_delta(item)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            vendor_stop = choice.get("stop_reason")  # vLLM: the stop string that matched
            self._matched_stop = vendor_stop if isinstance(vendor_stop, str) else None
            self._close_all()

    def _reasoning(self, text: str) -> None:
        if not text or not self.emit_thinking:
            return
        if self._open_type() != "thinking":
            self._close_tools()
            self._open_block({"type": "thinking", "thinking": "", "signature": ""})
        self._content[-1]["thinking"] += text
        self._emit_delta({"type": "thinking_delta", "thinking": text})

    def _text(self, text: str) -> None:
        if self._open_type() == "text":
            self._text_delta(text)
            return
        self._whitespace += text
        if not self._whitespace.strip():
            return  # a blank text block is rejected when Claude Code replays it
        pending, self._whitespace = self._whitespace, ""
        self._close_tools()
        self._open_block({"type": "text", "text": ""})
        self._text_delta(pending)

    def _text_delta(self, text: str) -> None:
        self._content[-1]["text"] += text
        self._emit_delta({"type": "text_delta", "text": text})

    # --- tool calls ---------------------------------------------------------------------------------

    def _tool_delta(self, item: Mapping[str, Any]) -> None:
        function = item.get("function") or {}
        call = self._resolve(item, function.get("name") or None)
        call.upstream_id = call.upstream_id or item.get("id") or None
        call.name = call.name or function.get("name") or None
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):  # some servers send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        if arguments and not call.closed:
            call.arguments += arguments
            if call is self._live:
                self._emit_delta({"type": "input_json_delta", "partial_json": arguments})
        # A fragment for a call already closed cannot be sent any more; calls are closed only once
        # their JSON is complete, so this is trailing noise.
        self._advance()

    def _resolve(self, item: Mapping[str, Any], name: str | None) -> _ToolCall:
        """The logical call a tool_calls[] item belongs to: the call at its `index` (without one, the last call).

        An item still starts a new call when it brings an `id` other than the one that call already has, or a
        `name` (without an id) once that call's arguments are complete JSON.
        """
        key: int | None = item.get("index")
        call_id = item.get("id") or None
        last = self._calls[-1] if self._calls else None
        current = last if key is None else self._by_key.get(key)
        if current is None:
            return self._new_call(key, call_id)
        # Servers that label every parallel call index 0 (Ollama) still give each one a new id or name.
        new_id = call_id is not None and call_id != current.upstream_id
        if key is not None and current.upstream_id is None:
            new_id = False
        new_name = call_id is None and name is not None and current.name is not None and _complete(current)
        return self._new_call(key, call_id) if new_id or new_name else current

    def _new_call(self, key: int | None, call_id: str | None) -> _ToolCall:
        call = _ToolCall(ordinal=len(self._calls), key=key, upstream_id=call_id)
        self._calls.append(call)
        if key is not None:
            self._by_key[key] = call
        return call

    def _advance(self) -> None:
        """Open the next waiting call once the live one is complete (interleaved calls stay buffered)."""
        while True:
            waiting = next((c for c in self._calls if c.block is None), None)
            if waiting is None or waiting.name is None:
                return
            if self._live is not None and not _complete(self._live):
                return
            self._open_tool(waiting)

    def _open_tool(self, call: _ToolCall) -> None:
        self._close_block()
        self._whitespace = ""  # blank text before a tool call never becomes a block
        name = self.tool_names.get(call.name, call.name) if call.name else "unknown_tool"
        block = {"type": "tool_use", "id": self._tool_id(call), "name": name, "input": {}}
        call.block = self._open_block(block)
        self._live = call
        if call.arguments:
            self._emit_delta({"type": "input_json_delta", "partial_json": call.arguments})

    def _close_tools(self) -> None:
        """Close the live call and send every call still waiting, in the order they began."""
        for call in self._calls:
            if call.block is None:
                self._open_tool(call)
        if self._open_type() == "tool_use":
            self._close_block()

    def _tool_id(self, call: _ToolCall) -> str:
        # Anthropic requires ^[a-zA-Z0-9_-]+$ (Kimi sends ids like "functions.Bash:0").
        safe = _UNSAFE_ID.sub("_", call.upstream_id or "")
        if safe:
            return safe
        return "toolu_" + hashlib.sha256(f"{self.message_id}:{call.ordinal}".encode()).hexdigest()[:24]

    # --- blocks -------------------------------------------------------------------------------------

    def _open_type(self) -> str | None:
        return None if self._open is None else self._content[self._open]["type"]

    def _open_block(self, block: dict[str, Any]) -> int:
        self._close_block()
        index = len(self._content)
        self._content.append(block)
        self._open = index
        start = {"type": "content_block_start", "index": index, "content_block": copy.deepcopy(block)}
        self._emit("content_block_start", start)
        return index

    def _close_block(self) -> None:
        if self._open is None:
            return
        block = self._content[self._open]
        if block["type"] == "thinking":
            block["signature"] = proxy_signature(block["thinking"])
            self._emit_delta({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "tool_use":
            call = self._live
            assert call is not None
            if not call.arguments:
                call.arguments = "{}"  # a zero-argument call still needs an input object
                self._emit_delta({"type": "input_json_delta", "partial_json": "{}"})
            block["input"] = _parse_arguments(call.arguments)
            call.closed = True
            self._live = None
        self._emit("content_block_stop", {"type": "content_block_stop", "index": self._open})
        self._open = None

    def _close_all(self) -> None:
        self._close_tools()
        self._close_block()
        self._whitespace = ""

    def _emit_delta(self, delta: dict[str, Any]) -> None:
        self._emit("content_block_delta", {"type": "content_block_delta", "index": self._open, "delta": delta})

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        self._buf.append(frame(event, data))

    def _drain(self) -> bytes:
        out, self._buf = b"".join(self._buf), []
        return out

    # --- the end ------------------------------------------------------------------------------------

    def _stop(self) -> tuple[str, str | None]:
        if self._refused or self._finish_reason == "content_filter":
            return "refusal", None
        if self._finish_reason == "length":
            return "max_tokens", None
        # OpenAI answers a forced tool call with finish_reason "stop"; old Ollama does so for all.
        if any(b["type"] == "tool_use" for b in self._content):
            return "tool_use", None
        if self._matched_stop is not None and self._matched_stop in self.stop_sequences:
            return "stop_sequence", self._matched_stop
        return "end_turn", None

    def _anthropic_usage(self) -> dict[str, int]:
        usage = self._usage or {}
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        if not prompt and not completion:
            return self._estimated_usage()
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") or 0
        written = (
            details.get("cache_write_tokens")
            or details.get("cache_creation_tokens")
            or usage.get("cache_creation_input_tokens")
            or 0
        )
        return {
            "input_tokens": max(0, prompt - cached - written),
            "output_tokens": completion,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": written,
        }

    def _estimated_usage(self) -> dict[str, int]:
        # Zeros would hide context growth from Claude Code, which auto-compacts subagents too.
        chars = sum(len(b.get("text", "")) + len(b.get("thinking", "")) for b in self._content)
        chars += sum(len(c.arguments) for c in self._calls)
        return {**_zero_usage(), "input_tokens": self.input_tokens_estimate, "output_tokens": max(1, chars // 4)}


def proxy_signature(thinking: str) -> str:
    """A recognisable stand-in for the signature only Anthropic can make (strip such blocks before
    sending a conversation to Anthropic)."""
    return PROXY_SIGNATURE_PREFIX + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def _reasoning_text(delta: Mapping[str, Any]) -> str:
    # DeepSeek/llama.cpp say reasoning_content, vLLM/Ollama/OpenRouter say reasoning; OpenRouter also
    # repeats it in reasoning_details, read only when the plain fields are absent.
    for key in ("reasoning_content", "reasoning"):
        if isinstance(delta.get(key), str) and delta[key]:
            return delta[key]
    details = delta.get("reasoning_details") or []
    return "".join(d.get("text") or "" for d in details if isinstance(d, Mapping))


def _complete(call: _ToolCall) -> bool:
    try:
        json.loads(call.arguments)
    except ValueError:
        return False
    return True


def _parse_arguments(arguments: str) -> Any:
    try:
        value = json.loads(arguments)
    except ValueError:
        # Keep what the model wrote: Claude Code reports invalid parameters and the model can retry.
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def _zero_usage() -> dict[str, int]:
    return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def as_chunk(completion: Mapping[str, Any]) -> dict[str, Any]:
    """The one stream chunk carrying everything in `completion`."""
    choices = []
    for choice in completion.get("choices") or []:
        message = dict(choice.get("message") or {})
        tool_calls = [{**call, "index": i} for i, call in enumerate(message.get("tool_calls") or [])]
        delta = {**message, "tool_calls": tool_calls}
        choices.append(
            {
                "index": choice.get("index", 0),
                "delta": delta,
                "finish_reason": choice.get("finish_reason"),
                **({"stop_reason": choice["stop_reason"]} if "stop_reason" in choice else {}),
            }
        )
    return {"choices": choices, "usage": completion.get("usage")}
