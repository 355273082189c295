"""Who and what a flow was for, as metric labels: its route, its requested model, its agent and its key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..claude_code import AGENT_HEADER, SUBAGENT_MARK
from ..flow_meta import META_GATEWAY_KEY, META_IDENTITY, META_ROUTE

ANTHROPIC = "anthropic"
GATEWAY = "gateway"
MAIN = "main"
UNKNOWN = "unknown"
_SUBAGENT_MARK = SUBAGENT_MARK.encode()
_DECODER = json.JSONDecoder()
_MODEL_FIRST = b'"model"'


def route_of(state: Mapping[str, Any]) -> str:
    """gateway, the routing provider's name, or anthropic; from what the other addons left on the flow."""
    if state.get(META_GATEWAY_KEY) is not None:
        return GATEWAY
    route = state.get(META_ROUTE)
    provider = route.get("provider") if isinstance(route, Mapping) else None
    return provider if isinstance(provider, str) and provider else ANTHROPIC


def key_of(state: Mapping[str, Any]) -> str:
    """The gateway key's name, or "" for traffic that did not come through the gateway."""
    name = state.get(META_GATEWAY_KEY)
    return name if isinstance(name, str) else ""


def agent_of(state: Mapping[str, Any], headers: Mapping[str, str], body: bytes | None) -> str:
    """main, the subagent's name when routing recognised it, or unknown for a subagent without one."""
    route = state.get(META_ROUTE)
    name = route.get("agent") if isinstance(route, Mapping) else None
    if isinstance(name, str) and name:
        return name
    who = state.get(META_IDENTITY)
    if who is not None:
        return UNKNOWN if who.is_subagent else MAIN
    # the same cheap test routing makes: no parse of the body
    if AGENT_HEADER in headers or _SUBAGENT_MARK in (body or b""):
        return UNKNOWN
    return MAIN


def known_model(state: Mapping[str, Any], body: bytes | None) -> str | None:
    """The requested model, when it is known without parsing the request: from routing, from an identity
    worked out already, or from the body's first key (Claude Code sends `model` first)."""
    route = state.get(META_ROUTE)
    requested = route.get("requested_model") if isinstance(route, Mapping) else None
    if isinstance(requested, str) and requested:
        return requested
    who = state.get(META_IDENTITY)
    if who is not None and who.model:
        return str(who.model)
    return first_key_model(body)


def first_key_model(body: bytes | None) -> str | None:
    """`model` when it is the first key of a JSON object body (a first key is a top-level one)."""
    if not body:
        return None
    head = body[:512].lstrip()
    if not head.startswith(b"{"):
        return None
    head = head[1:].lstrip()
    if not head.startswith(_MODEL_FIRST):
        return None
    text = head[len(_MODEL_FIRST):].decode("utf-8", "ignore").lstrip()
    if not text.startswith(":"):
        return None
    try:
        value, _ = _DECODER.raw_decode(text[1:].lstrip())
    except ValueError:
        return None
    return value if isinstance(value, str) else None
