"""Labels of a flow from what the other addons left on it, and the model from real Claude Code requests."""

from __future__ import annotations

import json

import pytest

from ccbridge.flow_meta import META_GATEWAY_KEY, META_ROUTE
from ccbridge.metrics.labels import agent_of, first_key_model, key_of, known_model, route_of
from tests.fixtures import all_requests

POSTS = [(n, r) for n, r in all_requests() if r["method"] == "POST"]


def sent(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()  # as the CLI writes it (JSON.stringify)


@pytest.mark.parametrize("name,req", POSTS, ids=[n for n, _ in POSTS])
def test_the_real_cli_names_its_model_first_and_marks_its_subagents(name, req):
    body = sent(req["body"])
    assert first_key_model(body) == req["body"]["model"]
    headers = {k.lower(): v for k, v in req["headers"]}
    subagent = "x-claude-code-agent-id" in headers
    assert agent_of({}, headers, body) == ("unknown" if subagent else "main")
    # an older CLI's subagent without the header is still told by its billing block
    headers.pop("x-claude-code-agent-id", None)
    assert agent_of({}, headers, body) == ("unknown" if subagent else "main")


def test_a_model_that_is_not_the_first_key_is_left_to_the_answer():
    assert first_key_model(b'{"max_tokens":5,"messages":[{"model":"inner"}],"model":"m"}') is None
    assert first_key_model(b' { "model" : "claude-x" , "stream": true}') == "claude-x"
    assert first_key_model(b'{"model": 5}') is None
    assert first_key_model(b"not json") is None
    assert first_key_model(None) is None


def test_routing_and_the_gateway_name_route_model_agent_and_key():
    routed = {META_ROUTE: {"provider": "ollama", "agent": "code-reviewer", "requested_model": "claude-haiku-4-5"}}
    assert route_of(routed) == "ollama"
    assert known_model(routed, b'{"model":"other"}') == "claude-haiku-4-5"
    assert agent_of(routed, {}, None) == "code-reviewer"
    assert key_of(routed) == ""
    gateway = {META_GATEWAY_KEY: "ci-bot", META_ROUTE: {"provider": "ollama"}}
    assert route_of(gateway) == "gateway" and key_of(gateway) == "ci-bot"
    assert route_of({}) == "anthropic"
