"""OpenAI Chat Completions request body -> Anthropic Messages request body, for the gateway (pure, no I/O).

The reverse of `request.py`. Inputs Anthropic has no place for are refused with `GatewayRequestError` (the
gateway answers 400) when dropping them would change the answer (`n > 1`, audio, unknown roles); sampling
knobs without an Anthropic equivalent (penalties, seed, logit_bias, logprobs) are left out silently.
"""

from __future__ import annotations

import json
import re
from typing import Any

# The newest id of each family that genai-prices 0.2.3 prices: Opus 5.5, Sonnet 5.5, Haiku 5.5.
CLAUDE_ALIASES: dict[str, str] = {
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-5-5",
}

# Thinking budgets per OpenAI reasoning effort; `request.requested_effort` maps each back to the same effort.
THINKING_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}

JSON_OBJECT_INSTRUCTION = "Answer with one JSON object and nothing else: no prose, no code fences."

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)$", re.DOTALL)

Block = dict[str, Any]


class GatewayRequestError(ValueError):
    """A request the gateway cannot translate; `param` names the offending field, as OpenAI errors do."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def resolve_model(name: str) -> str:
    """The Claude id for an alias (`opus`, `sonnet`, `haiku`); any other name unchanged."""
    return CLAUDE_ALIASES.get(name.strip().lower(), name)


def messages_request(chat: dict[str, Any], *, model: str, default_max_tokens: int = 4096) -> dict[str, Any]:
    """The Anthropic Messages body equivalent to the Chat Completions body `chat`, for `model`."""
    if not isinstance(chat.get("messages"), list) or not chat["messages"]:
        raise GatewayRequestError("'messages' must be a non-empty list", "messages")
    if isinstance(chat.get("n"), int) and chat["n"] > 1:
        raise GatewayRequestError("only n=1 is supported: Claude returns one choice per request", "n")
    system, messages = _conversation(chat["messages"])
    body: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(chat, default_max_tokens)}
    system += _format_instruction(chat.get("response_format"))
    if system:
        body["system"] = "\n\n".join(system)
    body["messages"] = messages
    tools = _tools(chat.get("tools"))
    if tools:
        body["tools"] = tools
        choice = _tool_choice(chat.get("tool_choice"), chat.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    output_format = _output_format(chat.get("response_format"))
    if output_format is not None:
        body["output_config"] = {"format": output_format}
    stops = _stop_sequences(chat.get("stop"))
    if stops:
        body["stop_sequences"] = stops
    budget = _thinking_budget(chat.get("reasoning_effort"), body)
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if body["max_tokens"] <= budget:
            body["max_tokens"] += budget  # the budget comes out of max_tokens; keep the room the client asked for
    else:
        body.update(_sampling(chat))
    if chat.get("stream"):
        body["stream"] = True
    user = chat.get("user") or chat.get("safety_identifier")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    return body


# --- messages ---------------------------------------------------------------------------------------


def _conversation(messages: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts in order, Anthropic messages with roles alternating)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise GatewayRequestError("each message must be an object", where)
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), f"{where}.content")
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), f"{where}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
            role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message, where)]
            role = "user"  # Anthropic carries tool results in a user turn
        else:
            raise GatewayRequestError(f"unsupported role {role!r}", f"{where}.role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Anthropic requires alternating roles
        else:
            turns.append({"role": role, "content": blocks})
    return system, [_compact(turn) for turn in turns]


def _user_blocks(content: Any, where: str) -> list[Block]:
    if isinstance(content, str):
        return [_text(content)] if content else []
    if not isinstance(content, list):
        raise GatewayRequestError("content must be a string or a list of parts", where)
    blocks: list[Block] = []
    for j, part in enumerate(content):
        block = _user_part(part, f"{where}[{j}]")
        if block is not None:
            blocks.append(_with_cache_control(block, part))
    return blocks


def _user_part(part: Any, where: str) -> Block | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return _text(part["text"]) if part.get("text") else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return {"type": "image", "source": _source(url, f"{where}.image_url.url")}
    if kind == "file":
        return _document(part.get("file") or {}, f"{where}.file")
    raise GatewayRequestError(f"unsupported content part type {kind!r}", f"{where}.type")


def _source(url: Any, where: str) -> dict[str, Any]:
    """An Anthropic base64 or url source for an image URL."""
    if not isinstance(url, str):
        raise GatewayRequestError("the image url must be a string", where)
    match = _DATA_URL.match(url)
    if match:
        return {"type": "base64", "media_type": match["media"], "data": match["data"]}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise GatewayRequestError("an image url must be an http(s) URL or a base64 data: URL", where)


def _document(file: dict[str, Any], where: str) -> Block:
    match = _DATA_URL.match(str(file.get("file_data") or ""))
    if match is None or match["media"] != "application/pdf":
        raise GatewayRequestError("only PDF files sent inline as a base64 data: URL are supported", where)
    block: Block = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                   "data": match["data"]}}
    if isinstance(file.get("filename"), str) and file["filename"]:
        block["title"] = file["filename"]
    return block


def _assistant_blocks(message: dict[str, Any], where: str) -> list[Block]:
    # reasoning_content is not replayed: Anthropic accepts thinking only with its own signature.
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(str(p.get("text") or p.get("refusal") or "") for p in content if isinstance(p, dict))
    else:
        text = content if isinstance(content, str) else ""
    blocks: list[Block] = [_text(text)] if text else []
    for j, call in enumerate(message.get("tool_calls") or []):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{j}]"))
    return blocks


def _tool_use(call: Any, where: str) -> Block:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name") or not call.get("id"):
        raise GatewayRequestError("a tool call needs an id and a function name", where)
    arguments = function.get("arguments") or "{}"
    try:
        tool_input = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError as exc:
        raise GatewayRequestError(f"tool call arguments are not valid JSON: {exc}",
                                  f"{where}.function.arguments") from exc
    if not isinstance(tool_input, dict):
        raise GatewayRequestError("tool call arguments must be a JSON object", f"{where}.function.arguments")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": tool_input}


def _tool_result(message: dict[str, Any], where: str) -> Block:
    if not message.get("tool_call_id"):
        raise GatewayRequestError("a tool message needs its tool_call_id", f"{where}.tool_call_id")
    return {"type": "tool_result", "tool_use_id": message["tool_call_id"],
            "content": _text_of(message.get("content"), f"{where}.content")}


def _text_of(content: Any, where: str) -> str:
    """The text of a string or a list of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "\n\n".join(str(p.get("text") or "") for p in content)
    raise GatewayRequestError("content must be a string or a list of text parts", where)


def _text(text: str) -> Block:
    return {"type": "text", "text": text}


def _with_cache_control(block: Block, part: Any) -> Block:
    # Clients that know they talk to Claude (Cline, Roo Code) mark cache breakpoints on content parts.
    marker = part.get("cache_control") if isinstance(part, dict) else None
    return {**block, "cache_control": marker} if isinstance(marker, dict) else block


def _compact(turn: dict[str, Any]) -> dict[str, Any]:
    blocks = turn["content"]
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


# --- tools ------------------------------------------------------------------------------------------


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise GatewayRequestError("'tools' must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not function.get("name"):
            raise GatewayRequestError("only function tools with a name are supported", f"tools[{i}]")
        converted: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            converted["description"] = function["description"]
        converted["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        out.append(converted)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}  # Anthropic's "none" takes no disable_parallel_tool_use
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" and (choice.get("function") or {}).get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise GatewayRequestError("tool_choice must be auto, none, required or a function", "tool_choice")
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# --- output format, limits, sampling, reasoning -----------------------------------------------------


def _output_format(response_format: Any) -> dict[str, Any] | None:
    """Anthropic structured output (`output_config.format`, what `request._response_format` reads back)."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        raise GatewayRequestError("response_format json_schema needs a 'schema' object",
                                  "response_format.json_schema.schema")
    return {"type": "json_schema", "schema": schema}


def _format_instruction(response_format: Any) -> list[str]:
    # Anthropic has no plain JSON mode: json_object becomes an instruction, as OpenAI too asks the
    # prompt to mention JSON.
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        return [JSON_OBJECT_INSTRUCTION]
    return []


def _max_tokens(chat: dict[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = chat.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GatewayRequestError(f"'{key}' must be a positive integer", key)
        return value
    return default


def _stop_sequences(stop: Any) -> list[str]:
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    # Anthropic rejects stop sequences that are only whitespace
    return [s for s in stops if isinstance(s, str) and s.strip()]


def _sampling(chat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(chat.get("temperature"), int | float):
        out["temperature"] = min(float(chat["temperature"]), 1.0)  # OpenAI's scale goes to 2, Anthropic's to 1
    elif isinstance(chat.get("top_p"), int | float):
        # Current Claude models refuse temperature and top_p together; temperature wins.
        out["top_p"] = float(chat["top_p"])
    return out


def _thinking_budget(effort: Any, body: dict[str, Any]) -> int | None:
    """The thinking budget for `reasoning_effort`, or None where thinking stays off."""
    if effort is None or effort == "none":
        return None
    if effort not in THINKING_BUDGETS:
        raise GatewayRequestError(f"reasoning_effort must be one of none, {', '.join(THINKING_BUDGETS)}",
                                  "reasoning_effort")
    # Anthropic refuses thinking with a forced tool, and a tool loop whose assistant turn holds no
    # thinking block (clients cannot send back the signed thinking); the answer then comes without it.
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool") or _continues_tool_loop(body["messages"]):
        return None
    return THINKING_BUDGETS[effort]


def _continues_tool_loop(messages: list[dict[str, Any]]) -> bool:
    last = messages[-1] if messages else {}
    content = last.get("content")
    return last.get("role") == "user" and isinstance(content, list) and any(
        b.get("type") == "tool_result" for b in content)
