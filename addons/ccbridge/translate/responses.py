"""Anthropic Messages request body -> keyword arguments for `AsyncOpenAI().responses.create(**kwargs)`.

The conversation is first translated to Chat Completions (`to_openai_request`, which knows every Claude Code
quirk: the billing line, tool results without a call, images in tool results, mid-conversation system text),
then recast as Responses input items, so both provider paths read a conversation the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ccbridge.translate.capabilities import ModelCapabilities
from ccbridge.translate.request import to_openai_request

# The API refuses a max_output_tokens below this.
MIN_OUTPUT_TOKENS = 16
# Chat Completions keywords that mean the same on Responses.
_SAME = ("model", "temperature", "top_p", "parallel_tool_calls", "stream", "safety_identifier", "prompt_cache_key")

Item = dict[str, Any]


def to_responses_request(
    body: dict[str, Any], target: ModelCapabilities, *, model: str, session_id: str | None
) -> dict[str, Any]:
    """The Responses call equivalent to an Anthropic Messages request."""
    # Responses keeps reasoning on alongside function tools, which Chat Completions refuses for some models.
    chat = to_openai_request(body, dataclasses.replace(target, reasoning_with_tools=True), model=model,
                             session_id=session_id)
    messages = list(chat["messages"])
    kwargs: dict[str, Any] = {key: chat[key] for key in _SAME if key in chat}
    if messages and messages[0]["role"] == "system":
        kwargs["instructions"] = messages.pop(0)["content"]
    kwargs["input"] = [item for message in messages for item in _items(message)]
    # Claude Code sends the whole conversation every turn: nothing needs to stay at the provider.
    kwargs["store"] = False
    if chat.get("tools"):
        kwargs["tools"] = [_tool(t["function"]) for t in chat["tools"]]
        if "tool_choice" in chat:
            kwargs["tool_choice"] = _tool_choice(chat["tool_choice"])
    limit = chat.get("max_completion_tokens", chat.get("max_tokens"))
    if isinstance(limit, int):
        kwargs["max_output_tokens"] = max(MIN_OUTPUT_TOKENS, limit)
    effort = chat.get("reasoning_effort")
    if effort is not None:
        kwargs["reasoning"] = {"effort": effort}
        if effort != "none" and target.reasoning_summary and _thinking_asked(body):
            kwargs["reasoning"]["summary"] = "auto"  # the only reasoning text the API gives back: the thinking
    if "response_format" in chat:  # structured output, with strict mode where the schema allows it
        kwargs["text"] = {"format": _text_format(chat["response_format"])}
    return kwargs


def _text_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    """Chat Completions' json_schema `response_format` as the Responses API's flat `text.format`."""
    return {"type": "json_schema", **response_format["json_schema"]}


# --- messages -> input items --------------------------------------------------------------------------


def _items(message: Mapping[str, Any]) -> list[Item]:
    role = message["role"]
    if role == "tool":
        return [{"type": "function_call_output", "call_id": message["tool_call_id"], "output": message["content"]}]
    if role == "assistant":
        items: list[Item] = []
        if message.get("content"):
            items.append({"type": "message", "role": "assistant", "content": message["content"]})
        for call in message.get("tool_calls") or []:
            function = call["function"]
            items.append({"type": "function_call", "call_id": call["id"], "name": function["name"],
                          "arguments": function["arguments"]})
        return items
    content = message["content"]
    if role == "system":  # in mid-conversation; the first one became `instructions`
        return [{"type": "message", "role": "developer", "content": content}]
    parts = [_input_text(content)] if isinstance(content, str) else [_input_part(p) for p in content]
    return [{"type": "message", "role": "user", "content": parts}]


def _input_part(part: Mapping[str, Any]) -> Item:
    kind = part["type"]
    if kind == "image_url":
        return {"type": "input_image", "image_url": part["image_url"]["url"], "detail": "auto"}
    if kind == "file":
        file = part["file"]
        return {"type": "input_file", "filename": file["filename"], "file_data": file["file_data"]}
    return _input_text(part.get("text", ""))


def _input_text(text: str) -> Item:
    return {"type": "input_text", "text": text}


# --- tools --------------------------------------------------------------------------------------------


def _tool(function: Mapping[str, Any]) -> Item:
    tool: Item = {"type": "function", "name": function["name"]}
    if function.get("description"):
        tool["description"] = function["description"]
    # Strict is the Responses default, and it refuses Claude Code's schemas (optional properties).
    tool.update(parameters=function["parameters"], strict=False)
    return tool


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, Mapping):  # {"type": "function", "function": {"name": ...}} -> flat
        return {"type": "function", "name": choice["function"]["name"]}
    return choice


# --- reasoning and structured output ------------------------------------------------------------------


def _thinking_asked(body: Mapping[str, Any]) -> bool:
    return (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
