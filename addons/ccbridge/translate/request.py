"""Anthropic Messages request body -> keyword arguments for `AsyncOpenAI().chat.completions.create(**kwargs)`.

Pure functions on plain dicts. Everything that depends on the target model is read from its
`ModelCapabilities`; nothing here tests a model name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from ccbridge.claude_code import BILLING_PREFIX
from ccbridge.translate.capabilities import EFFORT_SCALE, ModelCapabilities
from ccbridge.translate.tool_names import provider_tool_names

NO_RESULT = "[no result recorded for this tool call]"
NO_VISION = "[image omitted: this model cannot see images]"
IMAGE_ATTACHED = "[image returned by the tool; attached in the next message]"
DOCUMENT_ATTACHED = "[document returned by the tool; attached in the next message]"
PROXY_SIGNATURE_PREFIX = "ccbridge:"
_UNSAFE_NAME = re.compile(r"[^a-zA-Z0-9_-]")

Message = dict[str, Any]


def to_openai_request(
    body: dict[str, Any], target: ModelCapabilities, *, model: str, session_id: str | None
) -> dict[str, Any]:
    """The Chat Completions call equivalent to an Anthropic Messages request.

    Tool names the provider would reject are shortened (`tool_names.py`); `original_tool_names(body)` maps
    them back in the answer.
    """
    names = provider_tool_names(body)
    tools = _tools(body.get("tools"), names)
    effort = _reasoning_effort(body, target, has_tools=bool(tools))
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": _system(body.get("system"), target) + _conversation(body.get("messages") or [], target, names),
    }
    if tools:
        kwargs["tools"] = tools
        kwargs.update(_tool_choice(body.get("tool_choice"), tools, target, names))
    response_format = _response_format(body)
    if response_format is not None:
        kwargs["response_format"] = response_format
    if isinstance(body.get("max_tokens"), int):
        kwargs[target.token_param] = min(body["max_tokens"], target.max_output)
    kwargs.update(_sampling(body, target, effort))
    if effort is not None:
        kwargs["reasoning_effort"] = effort
    if body.get("stream"):
        kwargs["stream"] = True
        if target.supports_stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
    kwargs.update(_identity(body, target, session_id))
    return kwargs


def estimate_prompt_tokens(kwargs: dict[str, Any]) -> int:
    """A rough token count (4 characters a token) of a translated request (Chat Completions or Responses), for
    servers that report no usage."""
    size = len(json.dumps(kwargs.get("messages", []), ensure_ascii=False))
    size += len(json.dumps(kwargs.get("tools", []), ensure_ascii=False))
    size += len(json.dumps(kwargs["input"], ensure_ascii=False)) if "input" in kwargs else 0
    size += len(kwargs.get("instructions") or "")
    return max(1, size // 4)


def count_input_tokens(body: dict[str, Any], target: ModelCapabilities, *, model: str) -> int:
    """The `input_tokens` answer to a `count_tokens` request for a routed model, an estimate.

    Method: the request is translated as it would be sent to the provider, and its messages and tools, as
    JSON, are counted at 4 characters a token (`estimate_prompt_tokens`). Chat Completions has no counting
    endpoint, and a tokenizer would have to be downloaded at run time.
    """
    return estimate_prompt_tokens(to_openai_request({**body, "stream": False}, target, model=model, session_id=None))


def strip_proxy_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of `body` without thinking blocks ccbridge signed: Anthropic rejects their signatures."""
    out = copy.copy(body)
    out["messages"] = [_without_proxy_thinking(m) for m in body.get("messages") or []]
    return out


def _without_proxy_thinking(message: Message) -> Message:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    kept = [
        b
        for b in content
        if not (b.get("type") == "thinking" and str(b.get("signature", "")).startswith(PROXY_SIGNATURE_PREFIX))
    ]
    return {**message, "content": kept} if len(kept) != len(content) else message


# --- system -----------------------------------------------------------------------------------------


def _system(system: Any, target: ModelCapabilities) -> list[Message]:
    if target.cache_control and isinstance(system, list):
        parts = [_cached(_text(b["text"]), b, target) for b in _system_blocks(system)]
        if any("cache_control" in p for p in parts):
            return [{"role": "system", "content": parts}]
    text = _system_text(system)
    return [{"role": "system", "content": text}] if text else []


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return "\n\n".join(block["text"] for block in _system_blocks(system or []))


def _system_blocks(system: list[Any]) -> list[dict[str, Any]]:
    # The billing line changes on every request; keeping it would defeat the provider's prefix cache.
    return [b for b in system if isinstance(b, dict) and b.get("type") == "text" and b.get("text")
            and not b["text"].startswith(BILLING_PREFIX)]


def _cached(part: dict[str, Any], block: dict[str, Any], target: ModelCapabilities) -> dict[str, Any]:
    """`part` with the Anthropic block's cache breakpoint, where the provider honours one."""
    # OpenRouter reads breakpoints on text parts
    if target.cache_control and part["type"] == "text" and isinstance(block.get("cache_control"), dict):
        return {**part, "cache_control": block["cache_control"]}
    return part


# --- messages ---------------------------------------------------------------------------------------


class _Conversation:
    """Builds the OpenAI message list, keeping `tool` messages right after the call they answer."""

    def __init__(self, target: ModelCapabilities, names: dict[str, str]) -> None:
        self.target = target
        self.names = names  # original tool name -> the provider's
        self.out: list[Message] = []
        self.unanswered: list[str] = []  # ids of the last assistant turn's tool calls still without a result
        self.held: list[str] = []  # mid-conversation system texts waiting for those results

    def assistant(self, content: Any) -> None:
        self.close_calls()
        message = _assistant_message(content, self.names)
        self.out.append(message)
        self.unanswered = [call["id"] for call in message.get("tool_calls", [])]

    def user(self, content: Any) -> None:
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        parts: list[dict[str, Any]] = []
        orphans: list[dict[str, Any]] = []
        lifted: list[dict[str, Any]] = []
        for block in blocks:
            if block.get("type") == "tool_result":
                text, attachments = _tool_result_content(block, self.target, self.names)
                lifted.extend(attachments)
                if block.get("tool_use_id") in self.unanswered:
                    self.unanswered.remove(block["tool_use_id"])
                    self.out.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                                     "content": _tool_message_content(text, block, self.target)})
                else:
                    orphans.append(_cached(_text(f"[result of tool call {block.get('tool_use_id')}]\n{text}"),
                                           block, self.target))
            else:
                parts.extend(_cached(p, block, self.target) for p in _user_parts(block, self.target))
        self.close_calls()
        parts = orphans + lifted + parts
        if parts:
            self._append_user(parts)

    def system(self, content: Any) -> None:
        text = _plain_text(content)
        if text and self.unanswered:
            self.held.append(text)
        elif text:
            self._place_system(text)

    def close_calls(self) -> None:
        """Answer calls that got no result (interrupt, compaction), then release held system messages."""
        for call_id in self.unanswered:
            self.out.append({"role": "tool", "tool_call_id": call_id, "content": NO_RESULT})
        self.unanswered = []
        for text in self.held:
            self._place_system(text)
        self.held = []

    def _place_system(self, text: str) -> None:
        if self.target.system_in_middle:
            self.out.append({"role": "system", "content": text})
            return
        # Local chat templates reject a system message after the first turn: fold it into user text.
        self._append_user([_text(text)])

    def _append_user(self, parts: list[dict[str, Any]]) -> None:
        """A user message, merged into the previous one if that is a user message too (strict templates
        demand alternating roles)."""
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "user":
            previous = last["content"]
            parts = ([_text(previous)] if isinstance(previous, str) else previous) + parts
            self.out.pop()
        self.out.append({"role": "user", "content": _compact(parts)})


def _conversation(messages: Iterable[Message], target: ModelCapabilities, names: dict[str, str]) -> list[Message]:
    conversation = _Conversation(target, names)
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            conversation.assistant(message.get("content"))
        elif role == "user":
            conversation.user(message.get("content"))
        elif role == "system":
            conversation.system(message.get("content"))
    conversation.close_calls()
    return conversation.out


def _assistant_message(content: Any, names: dict[str, str]) -> Message:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            name = names.get(block["name"], block["name"])
            calls.append({"id": block["id"], "type": "function", "function": {"name": name, "arguments": arguments}})
        # thinking / redacted_thinking: Chat Completions has no input for them; server tool blocks
        # describe work the provider cannot see.
    message: Message = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""  # OpenAI accepts null content only alongside tool_calls
    return message


def _user_parts(block: dict[str, Any], target: ModelCapabilities) -> list[dict[str, Any]]:
    kind = block.get("type")
    if kind == "text":
        return [_text(block["text"])] if block.get("text") else []
    if kind == "image":
        return [_image(block, target)]
    if kind == "document":
        return _document(block, target)
    if kind == "search_result":
        body = _plain_text(block.get("content"))
        return [_text(f"{block.get('title', '')} ({block.get('source', '')})\n{body}".strip())]
    return []


def _tool_result_content(
    block: dict[str, Any], target: ModelCapabilities, names: dict[str, str]
) -> tuple[str, list[dict[str, Any]]]:
    """The tool message text, and parts to attach to the following user message (OpenAI allows no images
    in tool messages)."""
    content = block.get("content")
    items = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    texts: list[str] = []
    attachments: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "text":
            texts.append(item.get("text", ""))
        elif kind == "tool_reference":
            name = item.get("tool_name")
            texts.append(f"Tool '{names.get(name, name) if isinstance(name, str) else name}' is now available.")
        elif kind == "image":
            part = _image(item, target)
            texts.append(IMAGE_ATTACHED if part["type"] == "image_url" else NO_VISION)
            attachments += [part] if part["type"] == "image_url" else []
        elif kind in ("document", "search_result"):
            texts.append(DOCUMENT_ATTACHED)
            attachments += _user_parts(item, target)
    text = "\n".join(texts)
    return (f"Error: {text}" if block.get("is_error") else text), attachments


def _tool_message_content(text: str, block: dict[str, Any], target: ModelCapabilities) -> Any:
    """The tool message's content: a string, or one text part carrying the result's cache breakpoint."""
    items = block.get("content")
    marked = block if "cache_control" in block else (items[-1] if isinstance(items, list) and items else {})
    part = _cached(_text(text), marked if isinstance(marked, dict) else {}, target)
    return [part] if "cache_control" in part else text


def _image(block: dict[str, Any], target: ModelCapabilities) -> dict[str, Any]:
    source = block.get("source") or {}
    if not target.vision:
        return _text(NO_VISION)
    if source.get("type") == "base64":
        data = str(source.get("data", ""))
        data = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
        return {"type": "image_url", "image_url": {"url": f"data:{source.get('media_type')};base64,{data}"}}
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url", "")}}
    return _text(f"[image omitted: {source.get('type')} sources cannot be forwarded]")


def _document(block: dict[str, Any], target: ModelCapabilities) -> list[dict[str, Any]]:
    source = block.get("source") or {}
    title = block.get("title") or "document"
    kind = source.get("type")
    if kind == "text":
        return [_text(f"{title}:\n{source.get('data', '')}")]
    if kind == "content":
        return [_text(f"{title}:\n{_plain_text(source.get('content'))}")]
    if kind == "base64" and source.get("media_type") == "application/pdf" and target.pdf:
        data = f"data:application/pdf;base64,{source.get('data', '')}"
        filename = title if title.lower().endswith(".pdf") else f"{title}.pdf"
        return [{"type": "file", "file": {"filename": filename, "file_data": data}}]
    where = f" at {source['url']}" if kind == "url" and source.get("url") else ""
    return [_text(f"[document '{title}'{where} omitted: this model cannot read {source.get('media_type', kind)}]")]


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _compact(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    # Local chat templates handle a plain string best; lists are kept only when they carry media or a
    # cache breakpoint.
    if all(p["type"] == "text" and "cache_control" not in p for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(b.get("text", "") for b in content or [] if b.get("type") == "text" and b.get("text"))


# --- tools ------------------------------------------------------------------------------------------


def _tools(tools: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for tool in tools or []:
        # A `type` other than "custom" marks an Anthropic server tool (web_search_*, bash_*, ...),
        # which a Chat Completions backend cannot run.
        if (tool.get("type") or "custom") != "custom" or not tool.get("name"):
            continue
        function: dict[str, Any] = {"name": names.get(tool["name"], tool["name"])}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(
    choice: Any, tools: list[dict[str, Any]], target: ModelCapabilities, names: dict[str, str]
) -> dict[str, Any]:
    if not isinstance(choice, dict):
        return {}
    kind = choice.get("type")
    out: dict[str, Any] = {}
    offered = {t["function"]["name"] for t in tools}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        wanted = str(choice.get("name") or "")
        name = names.get(wanted, wanted)
        out["tool_choice"] = {"type": "function", "function": {"name": name}} if name in offered else "required"
    if choice.get("disable_parallel_tool_use") and target.supports_parallel_tool_calls and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """Anthropic structured output (`output_config.format`, or the beta's `output_format`) as a json_schema
    response_format; strict where OpenAI's strict mode accepts the schema, as Anthropic's is always enforced."""
    wanted = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if not isinstance(wanted, dict) or wanted.get("type") != "json_schema":
        return None
    if not isinstance(wanted.get("schema"), dict):
        return None
    schema = wanted["schema"]
    title = schema.get("title")
    name = _UNSAFE_NAME.sub("_", title)[:64] if isinstance(title, str) and title.strip() else "structured_output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict_schema(schema)}}


def strict_schema(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes `schema`: every object closed and all its properties required."""
    if not isinstance(schema, dict):
        return True
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    is_object = schema.get("type") == "object" or bool(properties)
    closed = schema.get("additionalProperties") is False and set(properties) == set(schema.get("required") or [])
    if is_object and not closed:
        return False
    return all(strict_schema(sub) for sub in _subschemas(schema, properties))


def _subschemas(schema: dict[str, Any], properties: dict[str, Any]) -> list[Any]:
    found = list(properties.values())
    for key in ("items", "not", "if", "then", "else"):
        found.append(schema.get(key))
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        found.extend(schema.get(key) or [])
    for key in ("$defs", "definitions"):
        found.extend((schema.get(key) or {}).values())
    return found


# --- sampling, reasoning, identity ------------------------------------------------------------------


def _sampling(body: dict[str, Any], target: ModelCapabilities, effort: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    reasoning = effort not in (None, "none")
    sampling_ok = target.sampling_with_reasoning or not reasoning
    if body.get("temperature") is not None and target.supports_temperature and sampling_ok:
        out["temperature"] = body["temperature"]
    if body.get("top_p") is not None and target.supports_top_p and sampling_ok:
        out["top_p"] = body["top_p"]
    if body.get("top_k") is not None and target.supports_top_k:
        out["extra_body"] = {"top_k": body["top_k"]}
    stops = [s for s in body.get("stop_sequences") or [] if isinstance(s, str) and s]
    if stops and target.supports_stop:
        out["stop"] = stops[: target.max_stop]
    return out


def _reasoning_effort(body: dict[str, Any], target: ModelCapabilities, *, has_tools: bool) -> str | None:
    accepted = target.reasoning_efforts
    if not accepted:
        return None
    if has_tools and not target.reasoning_with_tools:
        return "none" if "none" in accepted else None
    wanted = requested_effort(body)
    if wanted is None:
        return target.disabled_effort if target.disabled_effort in accepted else None
    return closest_effort(wanted, accepted)


def requested_effort(body: dict[str, Any]) -> str | None:
    """The effort Claude Code asks for, on OpenAI's scale; None when thinking is off."""
    thinking = body.get("thinking") or {}
    output_config = body.get("output_config") or {}
    kind = thinking.get("type")
    if kind == "adaptive":
        effort = output_config.get("effort")
        return effort if effort in EFFORT_SCALE else "high"  # Anthropic's default effort
    if kind == "enabled":
        budget = thinking.get("budget_tokens") or 0
        return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    return None


def closest_effort(wanted: str, accepted: tuple[str, ...]) -> str | None:
    """`wanted` if accepted, else the strongest accepted effort below it, else the weakest above it.

    "none" is only chosen when asked for: thinking was requested, so reasoning stays on if it can.
    """
    if wanted in accepted:
        return wanted
    rank = EFFORT_SCALE.index(wanted)
    candidates = [e for e in accepted if e != "none" and e in EFFORT_SCALE]
    below = [e for e in candidates if EFFORT_SCALE.index(e) < rank]
    above = [e for e in candidates if EFFORT_SCALE.index(e) > rank]
    if below:
        return max(below, key=EFFORT_SCALE.index)
    if above:
        return min(above, key=EFFORT_SCALE.index)
    return None


def _identity(body: dict[str, Any], target: ModelCapabilities, session_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id and target.supports_safety_identifier:
        # The raw value is a ~150-character JSON string; OpenAI caps safety_identifier at 64.
        out["safety_identifier"] = hashlib.sha256(str(user_id).encode()).hexdigest()
    if session_id and target.supports_cache_key:
        out["prompt_cache_key"] = session_id
    return out
