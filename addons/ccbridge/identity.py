"""Who sent a request: Claude Code's session, agent, client version and project, from headers and body.

Pure functions. The session id comes from the `X-Claude-Code-Session-Id` header, else from
`metadata.user_id` (a JSON string in current CLIs, `user_<hash>_account_<uuid>_session_<uuid>` in older ones).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .claude_code import AGENT_HEADER, BILLING_PREFIX, PARENT_AGENT_HEADER, SESSION_HEADER, SUBAGENT_MARK

_LEGACY_SESSION = re.compile(r"_session_([0-9a-fA-F-]{8,})$")
_CLIENT = re.compile(r"^claude-cli/(\S+)")
_WORKDIR = re.compile(r"(?:Primary working directory|Working directory):\s*(\S[^\n]*)")


@dataclass(frozen=True)
class Identity:
    session_id: str | None = None
    session_source: str | None = None  # header | metadata_json | metadata_legacy
    agent_id: str | None = None
    parent_agent_id: str | None = None
    is_subagent: bool = False
    client_version: str | None = None
    user_agent: str | None = None
    model: str | None = None
    stream: bool | None = None


def session_from_user_id(user_id: Any) -> tuple[str | None, str | None]:
    """(session id, source) from `metadata.user_id` in either of its known forms."""
    if isinstance(user_id, dict):
        value = user_id.get("session_id")
        return (value, "metadata_object") if isinstance(value, str) and value else (None, None)
    if not isinstance(user_id, str) or not user_id:
        return None, None
    if user_id.startswith("{"):
        try:
            parsed = json.loads(user_id)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str) and parsed["session_id"]:
            return parsed["session_id"], "metadata_json"
    match = _LEGACY_SESSION.search(user_id)
    return (match.group(1), "metadata_legacy") if match else (None, None)


def billing_block(body: Mapping[str, Any]) -> str | None:
    system = body.get("system")
    if isinstance(system, list) and system and isinstance(system[0], dict):
        text = system[0].get("text")
        if isinstance(text, str) and text.startswith(BILLING_PREFIX):
            return text
    return None


def client_version(user_agent: str | None) -> str | None:
    match = _CLIENT.match(user_agent or "")
    return match.group(1) if match else None


def identify(headers: Mapping[str, str], body: Any) -> Identity:
    """Who sent a request; `headers` must be case-insensitive (mitmproxy's `Headers` or a `HeaderView`)."""
    parsed = isinstance(body, dict)
    body = body if parsed else {}
    session_id: str | None = headers.get(SESSION_HEADER) or None
    source: str | None = "header"
    if not session_id:
        metadata = body.get("metadata")
        session_id, source = session_from_user_id(metadata.get("user_id") if isinstance(metadata, dict) else None)
    agent_id = headers.get(AGENT_HEADER) or None
    billing = billing_block(body) or ""
    user_agent = headers.get("user-agent")
    model = body.get("model")
    stream = body.get("stream")
    return Identity(
        session_id=session_id,
        session_source=source if session_id else None,
        agent_id=agent_id,
        parent_agent_id=headers.get(PARENT_AGENT_HEADER) or None,
        is_subagent=bool(agent_id) or SUBAGENT_MARK in billing,
        client_version=client_version(user_agent),
        user_agent=user_agent,
        model=model if isinstance(model, str) else None,
        stream=stream is True if parsed else None,  # absent means a plain JSON answer
    )


def project_dir(body: Any) -> str | None:
    """The working directory Claude Code states in its environment section, if the request shows it."""
    if not isinstance(body, dict):
        return None
    for text in _texts(body.get("system")) + [t for m in body.get("messages") or [] for t in _texts(m)]:
        match = _WORKDIR.search(text)
        if match:
            return match.group(1).strip()
    return None


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _texts(value.get("content")) if "content" in value else _texts(value.get("text"))
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    return []
