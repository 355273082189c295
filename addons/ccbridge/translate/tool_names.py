"""Tool names the provider accepts: long names (MCP tools) shortened reversibly, and restored in the answer.

OpenAI takes function names of at most 64 characters from `[a-zA-Z0-9_-]`; Anthropic takes longer ones, and
Claude Code's MCP tools (`mcp__<server>__<tool>`) exceed 64 easily. A name that does not fit becomes its first
characters plus `_` and a hash of the whole name: the same name gets the same short name on every turn (so
the tool calls in the history keep matching the tools), and two names sharing a long prefix still differ.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_NAME = 64
HASH_CHARS = 10
_ALLOWED = re.compile(r"[a-zA-Z0-9_-]+")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def short_name(name: str, salt: int = 0) -> str:
    """`name` if the provider accepts it, else a stable `<prefix>_<hash>` of at most 64 characters."""
    if salt == 0 and len(name) <= MAX_NAME and _ALLOWED.fullmatch(name):
        return name
    digest = hashlib.sha256(f"{name}\0{salt}".encode() if salt else name.encode()).hexdigest()[:HASH_CHARS]
    prefix = _UNSAFE.sub("_", name)[: MAX_NAME - HASH_CHARS - 1]
    return f"{prefix}_{digest}"


def provider_tool_names(body: Mapping[str, Any]) -> dict[str, str]:
    """Original name -> the name the provider sees, for every tool name in an Anthropic request.

    Names come from the tools, `tool_choice`, and the tool calls and tool references in the history; each
    short name is unique within the request (a clash, however unlikely, moves the later name to another hash).
    """
    names = sorted(set(_names_in(body)))
    taken = {n for n in names if short_name(n) == n}  # names kept as they are always win
    mapping: dict[str, str] = {}
    for name in names:
        if name in taken:
            mapping[name] = name
            continue
        salt, candidate = 0, short_name(name)
        while candidate in taken:
            salt += 1
            candidate = short_name(name, salt)
        taken.add(candidate)
        mapping[name] = candidate
    return mapping


def original_tool_names(body: Mapping[str, Any]) -> dict[str, str]:
    """Provider name -> original name, only for the names that were changed (to restore an answer)."""
    return {short: name for name, short in provider_tool_names(body).items() if short != name}


def _names_in(body: Mapping[str, Any]) -> Iterable[str]:
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and tool["name"]:
            yield tool["name"]
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("name"), str) and choice["name"]:
        yield choice["name"]
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                yield block["name"]
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                yield from (item["tool_name"] for item in block["content"] if isinstance(item, Mapping)
                            and item.get("type") == "tool_reference" and isinstance(item.get("tool_name"), str))
