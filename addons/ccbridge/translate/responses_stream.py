"""OpenAI Responses stream events -> Anthropic Messages server-sent events.

`ResponsesStreamTranslator` has the interface of `StreamTranslator` (feed events, then `finish()` or `fail()`;
every method returns the SSE bytes to send on) and is built on it: each event is recast as the Chat
Completions delta it amounts to, so the block grammar, tool-call buffering, usage and stop reasons are kept
by one state machine for both APIs. What is Responses-specific lives here: items addressed by output index
and item id, text and arguments some servers send only whole (in `.done` events), reasoning summaries, and
failures that arrive as events rather than as HTTP errors.

A non-streamed `Response` is replayed through the same translator (`whole`), so both paths give the same
message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ccbridge.translate.errors import context_length_message
from ccbridge.translate.stream import IncompleteAnswer, StreamTranslator

# Responses error codes -> Anthropic error types (anything else is an api_error).
_ERROR_TYPES = {
    "rate_limit_exceeded": "rate_limit_error",
    "context_length_exceeded": "invalid_request_error",
    "invalid_prompt": "invalid_request_error",
    "invalid_request_error": "invalid_request_error",
    "server_is_overloaded": "overloaded_error",
}
# incomplete_details.reason -> the Chat Completions finish_reason with the same meaning
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}

Event = Mapping[str, Any]


class ResponsesStreamTranslator:
    """Feed Responses stream events (plain dicts), then `finish()` (or `fail()`)."""

    def __init__(
        self,
        requested_model: str,
        message_id: str,
        *,
        input_tokens_estimate: int = 0,
        emit_thinking: bool = True,
        empty_reply: Literal["placeholder", "error"] = "placeholder",
        provider: str = "the provider",
        tool_names: Mapping[str, str] | None = None,
    ) -> None:
        self._chat = StreamTranslator(requested_model, message_id, input_tokens_estimate=input_tokens_estimate,
                                      emit_thinking=emit_thinking, empty_reply=empty_reply, tool_names=tool_names)
        self.provider = provider
        self._index_of: dict[str, int] = {}  # item id -> output index
        self._arguments: dict[int, str] = {}  # output index of a function call -> arguments sent so far
        self._sent: set[tuple[Any, ...]] = set()  # text and reasoning parts that got deltas
        self._thinking_part: tuple[Any, ...] | None = None  # the part the open thinking text belongs to
        self._items_seen = False

    # --- the StreamTranslator interface -------------------------------------------------------------

    @property
    def message(self) -> dict[str, Any]:
        return self._chat.message

    @property
    def error(self) -> tuple[str, str] | None:
        return self._chat.error

    @property
    def started(self) -> bool:
        return self._chat.started

    @property
    def finished(self) -> bool:
        return self._chat.finished

    def start(self) -> bytes:
        return self._chat.start()

    def ping(self) -> bytes:
        return self._chat.ping()

    def finish(self, complete: bool = True) -> bytes:
        return self._chat.finish(complete)

    def fail(self, error_type: str, message: str) -> bytes:
        return self._chat.fail(error_type, message)

    def feed(self, event: Event) -> bytes:
        out = self._chat.start()
        kind = event.get("type")
        if kind == "response.output_item.added":
            out += self._item_added(event)
        elif kind == "response.output_item.done":
            out += self._item_done(event.get("item") or {}, event.get("output_index"))
        elif kind == "response.output_text.delta":
            out += self._text(_part(event), event.get("delta") or "")
        elif kind == "response.output_text.done":
            out += self._text_once(_part(event), event.get("text") or "")
        elif kind == "response.refusal.delta":
            out += self._text(_part(event), event.get("delta") or "", refusal=True)
        elif kind == "response.refusal.done":
            out += self._text_once(_part(event), event.get("refusal") or "", refusal=True)
        elif kind == "response.function_call_arguments.delta":
            out += self._arguments_delta(self._output_index(event), event.get("delta") or "")
        elif kind == "response.function_call_arguments.done":
            out += self._arguments_done(self._output_index(event), event.get("arguments") or "")
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            out += self._thinking(_reasoning_part(event), event.get("delta") or "")
        elif kind in ("response.reasoning_summary_text.done", "response.reasoning_text.done"):
            if _reasoning_part(event) not in self._sent:
                out += self._thinking(_reasoning_part(event), event.get("text") or "")
        elif kind in ("response.completed", "response.incomplete"):
            out += self._end(event.get("response") or {})
        elif kind == "response.failed":
            error = (event.get("response") or {}).get("error") or {}
            out += self._failed(error.get("code"), error.get("message") or "the response failed")
        elif kind == "error":
            out += self._failed(event.get("code"), event.get("message") or "error event without a message")
        # other events (created, in_progress, content_part.*, annotations, ...) carry nothing to translate
        return out

    # --- output items -------------------------------------------------------------------------------

    def _item_added(self, event: Event) -> bytes:
        self._items_seen = True
        item = event.get("item") or {}
        index = _as_index(event.get("output_index"), len(self._index_of))
        if item.get("id"):
            self._index_of[item["id"]] = index
        if item.get("type") != "function_call":
            return b""
        self._arguments[index] = item.get("arguments") or ""
        self._thinking_part = None
        call = {"index": index, "id": item.get("call_id") or item.get("id"), "type": "function",
                "function": {"name": item.get("name") or "", "arguments": item.get("arguments") or ""}}
        return self._delta({"tool_calls": [call]})

    def _item_done(self, item: Mapping[str, Any], output_index: Any) -> bytes:
        """Whatever of a finished item no delta carried (some servers stream nothing but whole items)."""
        self._items_seen = True
        kind = item.get("type")
        item_id = item.get("id") or f"#{output_index}"
        out = b""
        if kind == "message":
            for number, part in enumerate(item.get("content") or []):
                if part.get("type") == "output_text":
                    out += self._text_once((item_id, number), part.get("text") or "")
                elif part.get("type") == "refusal":
                    out += self._text_once((item_id, number), part.get("refusal") or "", refusal=True)
        elif kind == "reasoning":
            for source in ("summary", "content"):
                for number, part in enumerate(item.get(source) or []):
                    key = (item_id, source, number)
                    if key not in self._sent:
                        out += self._thinking(key, part.get("text") or "")
        elif kind == "function_call":
            index = self._index_of.get(item_id) if item.get("id") else None
            if index is None:
                index = _as_index(output_index, len(self._index_of))
            if index in self._arguments:
                out += self._arguments_done(index, item.get("arguments") or "")
            else:  # never announced: the whole call at once
                self._index_of.setdefault(item_id, index)
                out += self._item_added({"item": item, "output_index": index})
        return out

    def _output_index(self, event: Event) -> int:
        if isinstance(event.get("output_index"), int):
            return int(event["output_index"])
        return self._index_of.get(str(event.get("item_id")), len(self._index_of))

    # --- content ------------------------------------------------------------------------------------

    def _text(self, part: tuple[Any, ...], text: str, *, refusal: bool = False) -> bytes:
        if not text:
            return b""
        self._sent.add(part)
        self._thinking_part = None
        return self._delta({"refusal": text} if refusal else {"content": text})

    def _text_once(self, part: tuple[Any, ...], text: str, *, refusal: bool = False) -> bytes:
        return b"" if part in self._sent else self._text(part, text, refusal=refusal)

    def _thinking(self, part: tuple[Any, ...], text: str) -> bytes:
        if not text:
            return b""
        self._sent.add(part)
        if self._thinking_part is not None and self._thinking_part != part:
            text = "\n\n" + text  # summary parts are paragraphs of one thinking block
        self._thinking_part = part
        return self._delta({"reasoning_content": text})

    def _arguments_delta(self, index: int, text: str) -> bytes:
        if not text:
            return b""
        self._arguments[index] = self._arguments.get(index, "") + text
        self._thinking_part = None
        return self._delta({"tool_calls": [{"index": index, "function": {"arguments": text}}]})

    def _arguments_done(self, index: int, arguments: str) -> bytes:
        sent = self._arguments.get(index, "")
        if len(arguments) > len(sent) and arguments.startswith(sent):
            return self._arguments_delta(index, arguments[len(sent):])
        return b""

    # --- the end ------------------------------------------------------------------------------------

    def _end(self, response: Mapping[str, Any]) -> bytes:
        out = b""
        if not self._items_seen:  # a server that sends only the final response, or a non-streamed one
            for index, item in enumerate(response.get("output") or []):
                out += self._item_done(item, index)
        reason = str((response.get("incomplete_details") or {}).get("reason") or "")
        finish = "stop" if response.get("status", "completed") == "completed" else _INCOMPLETE.get(reason, "length")
        chunk = {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": chat_usage(response)}
        return out + self._chat.feed(chunk)

    def _failed(self, code: Any, message: str) -> bytes:
        error_type = _ERROR_TYPES.get(str(code), "api_error")
        context = context_length_message(message)
        if context is not None:
            return self._chat.fail("invalid_request_error", context)
        detail = f"{message} [{code}]" if code else message
        return self._chat.fail(error_type, f"{self.provider} failed: {detail}")

    def whole(self, response: Mapping[str, Any]) -> dict[str, Any]:
        """The Anthropic message for a non-streamed `Response` (its `model_dump()`).

        Raises `IncompleteAnswer` where the stream would end with an error event (a failed response, or an
        empty answer under `empty_reply="error"`).
        """
        status = response.get("status") or "completed"
        self.feed({"type": _TERMINAL.get(status, "response.completed"), "response": response})
        self.finish()
        if self.error is not None:
            raise IncompleteAnswer(*self.error)
        return self.message

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._chat.feed({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


def chat_usage(response: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Responses `usage` in Chat Completions' field names (what StreamTranslator reads)."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return None
    details = usage.get("input_tokens_details") or {}
    return {
        "prompt_tokens": usage.get("input_tokens") or 0,
        "completion_tokens": usage.get("output_tokens") or 0,
        "prompt_tokens_details": {"cached_tokens": details.get("cached_tokens") or 0,
                                  "cache_write_tokens": details.get("cache_write_tokens") or 0},
    }


def _part(event: Event) -> tuple[Any, ...]:
    return (event.get("item_id") or f"#{event.get('output_index')}", event.get("content_index") or 0)


def _reasoning_part(event: Event) -> tuple[Any, ...]:
    item = event.get("item_id") or f"#{event.get('output_index')}"
    if "summary_index" in event:
        return (item, "summary", event.get("summary_index") or 0)
    return (item, "content", event.get("content_index") or 0)


def _as_index(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int) else default
