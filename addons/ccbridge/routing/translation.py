"""Which translation a provider gets, by its `api:`: the request we send it and the translator of its answer.

The routing addon, the sidecar and `alternate.ask` (replays, shadow copies) all go through here, so a provider
with `api: responses` is never spoken to in Chat Completions by one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccbridge.routes import Provider
from ccbridge.translate import (
    ModelCapabilities,
    ResponsesStreamTranslator,
    StreamTranslator,
    original_tool_names,
    to_openai_request,
    to_responses_request,
)

AnswerTranslator = StreamTranslator | ResponsesStreamTranslator


def provider_request(body: dict[str, Any], provider: Provider, capabilities: ModelCapabilities, *, model: str,
                     session_id: str | None) -> dict[str, Any]:
    """The keyword arguments of the SDK call (`chat.completions.create` or `responses.create`) for `body`."""
    translate = to_responses_request if provider.api == "responses" else to_openai_request
    return translate(body, capabilities, model=model, session_id=session_id)


def answer_translator(body: Mapping[str, Any], provider: Provider, *, model: str, requested_model: str,
                      message_id: str, input_tokens_estimate: int = 0) -> AnswerTranslator:
    """What turns the provider's answer to `body` into Anthropic's, streamed (`feed`) or whole (`whole`).

    `model` is the provider's model (for messages); `requested_model` is the one the answer says it is from.
    """
    tool_names = original_tool_names(body)
    if provider.api == "responses":
        return ResponsesStreamTranslator(
            requested_model, message_id, input_tokens_estimate=input_tokens_estimate,
            provider=f"{provider.name} ({model})", tool_names=tool_names,
        )
    return StreamTranslator(
        requested_model, message_id, input_tokens_estimate=input_tokens_estimate,
        stop_sequences=_stop_sequences(body), tool_names=tool_names,
    )


def _stop_sequences(body: Mapping[str, Any]) -> list[str]:
    return [s for s in body.get("stop_sequences") or [] if isinstance(s, str)]
