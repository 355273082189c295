"""The JSON API: structure of sessions, nested threads, requests, usage, search and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fixtures import fixture_files
from tests.unit.viewer.test_pages import session_id_of


def test_sessions_endpoint(fixture_client: TestClient) -> None:
    data = fixture_client.get("/api/sessions").json()
    assert len(data["sessions"]) == len(fixture_files()) and data["next_cursor"] is None
    first = data["sessions"][0]
    assert set(first) >= {"id", "started_at", "last_activity_at", "client_version", "project_dir", "models",
                          "requests", "subagent_runs", "tokens", "cost_usd", "errors", "routed"}
    assert {w["claim"] for w in data["limits"]} == {"5h", "7d"}
    stamps = [s["last_activity_at"] for s in data["sessions"]]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize("path", [p for p in fixture_files() if p.stem != "hello"],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_session_endpoint_nests_the_subagent(fixture_client: TestClient, path: Path) -> None:
    data = fixture_client.get(f"/api/sessions/{session_id_of(path)}").json()
    assert data["unlinked_subagents"] == []
    (thread,) = data["threads"]
    calls = [b for t in thread["turns"] for b in (t["answer"] or {"content": []})["content"] if b["type"] == "tool_use"]
    (call,) = calls
    assert call["name"] == "Agent"
    (run,) = call["subagents"]
    assert run["tool_use_id"] == call["id"] and run["subagent_type"] == "code-reviewer"
    assert "MARKER-PARENT-PROMPT-91c2" in run["prompt"] and "MOCK-SUBAGENT-ANSWER" in run["answer"]
    assert run["agent_id"].startswith("a") and run["link"] == "agent_id"
    (sub_thread,) = run["threads"]
    assert sub_thread["is_subagent"] and sub_thread["turns"][0]["exchange"]["agent_id"] == run["agent_id"]
    turn = thread["turns"][0]["exchange"]
    assert turn["tokens"]["cache_read"] == 13000 and turn["cost_usd"] is not None
    assert turn["time_to_first_byte_ms"] == pytest.approx(200, abs=1)


def test_request_endpoint(fixture_client: TestClient) -> None:
    path = next(p for p in fixture_files() if p.stem == "subagent-sync" and p.parent.name == "2.1.329")
    session = fixture_client.get(f"/api/sessions/{session_id_of(path)}").json()
    last = session["threads"][0]["turns"][-1]["exchange"]["id"]
    data = fixture_client.get(f"/api/requests/{last}").json()
    assert data["request"]["messages"][-1]["content"][0]["type"] == "tool_result"
    assert data["response"]["content"][0]["text"].endswith("MOCK-FINAL-ANSWER")
    assert data["response"]["stop_reason"] == "end_turn"
    assert data["sse_events"][0]["event"] == "message_start"
    assert data["previous_in_thread"] == session["threads"][0]["turns"][0]["exchange"]["id"]
    assert any(name.lower() == "x-claude-code-session-id" for name, _ in data["request_headers"])
    assert fixture_client.get("/api/requests/999999").status_code == 404


def test_usage_endpoint(fixture_client: TestClient) -> None:
    data = fixture_client.get("/api/usage").json()
    keys = {(r["provider"], r["model"], r["agent"]) for r in data["rows"]}
    assert ("anthropic", "claude-opus-5-5", "subagent") in keys and ("anthropic", "claude-opus-5-5", "main") in keys
    assert all(r["day"] == "2026-11-21" for r in data["rows"])
    assert data["total_cost_usd"] is not None
    assert fixture_client.get("/api/usage", params={"since": "2030-01-01"}).json()["rows"] == []


def test_openapi_documents_the_api(fixture_client: TestClient) -> None:
    paths = fixture_client.get("/openapi.json").json()["paths"]
    assert {"/api/sessions", "/api/sessions/{session_id}", "/api/requests/{exchange_id}", "/api/usage",
            "/health"} <= set(paths)
    assert "/sessions/{session_id}" not in paths, "pages are not API"
    assert fixture_client.get("/docs").status_code == 200
    assert fixture_client.get("/health").json() == {"status": "ok"}
