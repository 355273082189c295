"""A non-streaming OpenAI ChatCompletion -> an Anthropic Messages response.

The completion is replayed as one stream chunk through `StreamTranslator`, so the JSON path gives exactly
the message the SSE path would (Claude Code falls back to non-streaming after a stream error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ccbridge.translate.stream import StreamTranslator


class IncompleteAnswer(ValueError):
    """The completion cannot be returned as a message; answer with an error of `error_type` instead."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def to_anthropic_message(
    completion: Mapping[str, Any],
    requested_model: str,
    message_id: str,
    *,
    input_tokens_estimate: int = 0,
    stop_sequences: Sequence[str] = (),
    emit_thinking: bool = True,
    empty_reply: Literal["placeholder", "error"] = "placeholder",
    tool_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Anthropic message for `completion` (a `ChatCompletion.model_dump()`).

    Raises `IncompleteAnswer` where the stream would end with an error event: no finish_reason, or an
    empty answer under `empty_reply="error"`.
    """
    translator = StreamTranslator(
        requested_model,
        message_id,
        input_tokens_estimate=input_tokens_estimate,
        stop_sequences=stop_sequences,
        emit_thinking=emit_thinking,
        empty_reply=empty_reply,
        tool_names=tool_names,
    )
    translator.feed(as_chunk(completion))
    translator.finish()
    if translator.error is not None:
        raise IncompleteAnswer(*translator.error)
    return translator.message


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
