"""Reading Anthropic messages as Claude Code sends them: blocks, text, system reminders. Pure functions.

The CLI re-sends one message in several forms (a plain string, or a list of text blocks carrying a moving
`cache_control` marker), so everything here works on a normalized view: a list of blocks, no markers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ccbridge.claude_code import DELEGATION_TOOLS

Message = Mapping[str, Any]
Block = Mapping[str, Any]

_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>\s*", re.S)
_VOLATILE = ("cache_control",)


def blocks(message: Message | None) -> list[Block]:
    """The content of a message as a list of blocks (a string becomes one text block)."""
    if not message:
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b if isinstance(b, Mapping) else {"type": "text", "text": str(b)} for b in content]
    return []


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _block_key(block: Block) -> Any:
    """What identifies a block across re-serialisations: the CLI adds defaults (an Edit's `replace_all`),
    reorders keys and trims whitespace when it resends a message, so a tool call is its id (unique) and a
    text its stripped text."""
    kind = block.get("type")
    if kind == "text":
        return ["text", str(block.get("text") or "").strip()]
    if kind == "tool_use":
        return ["tool_use", str(block.get("id") or ""), str(block.get("name") or "")]
    if kind == "tool_result":
        content = block.get("content")
        parts = blocks({"content": content}) if isinstance(content, str | list) else []
        return ["tool_result", str(block.get("tool_use_id") or ""), bool(block.get("is_error")),
                [_block_key(p) for p in parts]]
    return _normal(block)


def message_key(message: Message) -> str:
    """A comparison key equal for the forms of one message the CLI sends (string vs blocks, markers,
    defaults added to tool inputs, key order, surrounding whitespace).

    System-role messages (the environment section, the agent list) are compared by role only: the CLI
    rewrites them between turns. Assistant thinking blocks are left out: they are not always resent.
    """
    role = message.get("role")
    if role == "system":
        return "system"
    items = blocks(message)
    if role == "assistant":
        items = [b for b in items if b.get("type") not in ("thinking", "redacted_thinking")]
    return json.dumps([role, [_block_key(b) for b in items]], sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), default=str)


def block_text(block: Block) -> str:
    """The readable text of a block (text, thinking, tool_result content), else ''."""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text") or "")
    if kind == "thinking":
        return str(block.get("thinking") or "")
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(block_text(b) for b in content if isinstance(b, Mapping))
    return ""


def message_text(message: Message | None) -> str:
    return "\n".join(t for t in (block_text(b) for b in blocks(message)) if t)


def without_reminders(text: str) -> str:
    return _REMINDER.sub("", text).strip()


def split_reminders(text: str) -> list[tuple[bool, str]]:
    """`text` cut into (is_reminder, piece) parts, in order; empty pieces dropped."""
    parts: list[tuple[bool, str]] = []
    at = 0
    for match in _REMINDER.finditer(text):
        if text[at : match.start()].strip():
            parts.append((False, text[at : match.start()]))
        parts.append((True, match.group(0).strip()))
        at = match.end()
    if text[at:].strip():
        parts.append((False, text[at:]))
    return parts


def user_prompt(message: Message | None) -> str:
    """What a person (or a parent agent) asked in a user message: its text without system reminders."""
    if not message or message.get("role") != "user":
        return ""
    texts = [without_reminders(block_text(b)) for b in blocks(message) if b.get("type") == "text"]
    return "\n".join(t for t in texts if t).strip()


def first_prompt(messages: list[Message]) -> str:
    for message in messages:
        if message.get("role") == "user":
            return user_prompt(message)
    return ""


def is_agent_call(block: Block) -> bool:
    return block.get("type") == "tool_use" and block.get("name") in DELEGATION_TOOLS


def tool_input(block: Block) -> Mapping[str, Any]:
    value = block.get("input")
    return value if isinstance(value, Mapping) else {}
