"""Session, agent and client identity from real Claude Code requests of both CLI versions."""

import json

import pytest

from ccbridge.identity import identify, project_dir, session_from_user_id
from ccbridge.ratelimits import parse_unified
from tests.fixtures import all_requests

POSTS = [(n, r) for n, r in all_requests() if r["method"] == "POST"]


def lower(headers):
    out = {}
    for k, v in headers:
        out.setdefault(k.lower(), v)
    return out


@pytest.mark.parametrize("name,req", POSTS, ids=[n for n, _ in POSTS])
def test_fixture_identity(name, req):
    headers = lower(req["headers"])
    who = identify(headers, req["body"])
    assert who.session_id == headers["x-claude-code-session-id"]
    assert who.session_id == json.loads(req["body"]["metadata"]["user_id"])["session_id"]
    assert who.client_version == name.split("/")[0]
    assert who.model == req["body"]["model"]
    assert who.stream is True
    subagent = "x-claude-code-agent-id" in headers
    assert who.is_subagent == subagent
    assert who.agent_id == headers.get("x-claude-code-agent-id")
    billing = req["body"]["system"][0]["text"]
    assert ("cc_is_subagent=true" in billing) == subagent


def test_session_without_header_from_metadata_forms():
    legacy = "user_abc123_account_1111-2222_session_3ceb04ae-f34d-4943-b017-3727a39f0ba8"
    assert session_from_user_id(legacy) == ("3ceb04ae-f34d-4943-b017-3727a39f0ba8", "metadata_legacy")
    as_json = json.dumps({"device_id": "d", "account_uuid": "", "session_id": "s-1"})
    assert session_from_user_id(as_json) == ("s-1", "metadata_json")
    assert session_from_user_id({"session_id": "s-2"}) == ("s-2", "metadata_object")
    assert session_from_user_id("garbage") == (None, None)
    who = identify({}, {"metadata": {"user_id": legacy}, "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cc_is_subagent=true;"}]})
    assert who.session_id.startswith("3ceb04ae") and who.session_source == "metadata_legacy"
    assert who.is_subagent and who.agent_id is None


def test_project_dir_from_environment_section():
    _name, req = POSTS[0]
    assert project_dir(req["body"]).startswith("/home/dev/")
    assert project_dir({"messages": []}) is None


def test_ratelimit_headers_parsed_by_claim_and_field():
    headers = [
        ("anthropic-ratelimit-unified-status", "allowed_warning"),
        ("anthropic-ratelimit-unified-reset", "1763719200"),
        ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
        ("Anthropic-Ratelimit-Unified-5h-Utilization", "0.42"),
        ("anthropic-ratelimit-unified-5h-reset", "1763719200"),
        ("anthropic-ratelimit-unified-5h-status", "allowed"),
        ("anthropic-ratelimit-unified-7d-utilization", "1.02"),
        ("anthropic-ratelimit-unified-7d-surpassed-threshold", "0.75"),
        ("anthropic-ratelimit-unified-7d_oi-status", "rejected"),
        ("content-type", "text/event-stream"),
    ]
    assert parse_unified(headers) == {
        "status": "allowed_warning", "reset": 1763719200, "representative_claim": "five_hour",
        "claims": {
            "5h": {"utilization": 0.42, "reset": 1763719200, "status": "allowed"},
            "7d": {"utilization": 1.02, "surpassed_threshold": 0.75},
            "7d_oi": {"status": "rejected"},
        },
    }
    assert parse_unified([("content-type", "x")]) is None
