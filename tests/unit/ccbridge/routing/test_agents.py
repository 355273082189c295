"""Subagent recognition on real Claude Code captures (2.1.329 and 2.1.197), agent files and memory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ccbridge.headers import HeaderView
from ccbridge.identity import Identity, identify
from ccbridge.routing.agents import (
    AgentCall,
    AgentDefinition,
    AgentDefinitions,
    AgentMemory,
    Recognition,
    agent_calls_in,
    parse_agent_file,
    recognise_agent,
)

FIXTURES = Path("/work/shared/fixtures/claude-code")
VERSIONS = ("2.1.329", "2.1.197")
SCENARIOS = ("subagent", "subagent-sync")


def exchanges(version: str, scenario: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (FIXTURES / version / f"{scenario}.jsonl").read_text().splitlines()]
    return [x for x in lines if x["method"] == "POST"]


def headers_of(exchange: dict[str, Any]) -> dict[str, str]:
    return dict(exchange["headers"])


def sender(headers: dict[str, str], body: dict[str, Any]) -> Identity:
    """Who sent a request, as the routing addon works it out once per flow."""
    return identify(HeaderView(headers.items()), body)


def sender_of(exchange: dict[str, Any]) -> Identity:
    return sender(headers_of(exchange), exchange["body"])


def is_subagent_exchange(exchange: dict[str, Any]) -> bool:
    return any(name.lower() == "x-claude-code-agent-id" for name, _ in exchange["headers"])


def reviewer_file_text() -> str:
    """The agent file the captures were made with, rebuilt from the body Claude Code put in the system prompt."""
    subagent = next(x for x in exchanges("2.1.329", "subagent-sync") if is_subagent_exchange(x))
    system_prompt = subagent["body"]["system"][2]["text"]
    end = "END-OF-REVIEWER-BODY-7f3a."
    body = system_prompt[: system_prompt.index(end) + len(end)]
    return (
        "---\nname: code-reviewer\ndescription: Reviews code for bugs, style and security issues. Use after code"
        " changes.\ntools: Read, Grep\nmodel: inherit\n---\n\n" + body + "\n"
    )


REVIEWER = parse_agent_file(reviewer_file_text(), "code-reviewer")
OTHER = AgentDefinition(name="doc-writer", prompt="You write documentation. MARKER-DOCS-1b2c")


def parent_calls(version: str, scenario: str) -> list[AgentCall]:
    """What the addon remembers from the parent's turn: the Agent call in the (mock) response."""
    first = exchanges(version, scenario)[0]["mock_response"]["tool_use"]
    return agent_calls_in({"role": "assistant", "content": [{"type": "tool_use", **first}]})


# --- agent files --------------------------------------------------------------------------------------


def test_reviewer_file_parses() -> None:
    assert REVIEWER.name == "code-reviewer"
    assert REVIEWER.tools == ("Read", "Grep") and REVIEWER.model == "inherit"
    assert REVIEWER.prompt.startswith("You are a meticulous code reviewer. MARKER-REVIEWER-7f3a\n\nWhen invoked")
    assert REVIEWER.prompt.endswith("END-OF-REVIEWER-BODY-7f3a.")


def test_a_horizontal_rule_in_the_body_stays_in_the_prompt() -> None:
    text = "---\nname: writer\ntools:\n  - Read\n  - Write\n---\nIntro.\n\n---\n\nname: not-front-matter\n---\nEnd.\n"
    definition = parse_agent_file(text, "stem")
    assert definition.name == "writer" and definition.tools == ("Read", "Write")
    assert definition.prompt == "Intro.\n\n---\n\nname: not-front-matter\n---\nEnd."


def test_name_defaults_to_the_file_stem() -> None:
    assert parse_agent_file("---\ndescription: x\n---\nBody", "my-agent").name == "my-agent"
    assert parse_agent_file("---\n---\nBody", "bare").prompt == "Body"


@pytest.mark.parametrize("text", ["No front matter", "---\nname: x\nBody without end", "---\n- a\n- b\n---\nBody", ""])
def test_bad_agent_files_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_agent_file(text, "x")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_definitions_reload_when_files_change_at_most_once_a_second(tmp_path: Path) -> None:
    user_dir, project_dir = tmp_path / "user", tmp_path / "project"
    user_dir.mkdir()
    project_dir.mkdir()
    (user_dir / "code-reviewer.md").write_text(reviewer_file_text())
    (user_dir / "broken.md").write_text("no front matter")
    clock = FakeClock()
    definitions = AgentDefinitions([user_dir, project_dir, tmp_path / "missing"], clock=clock)
    assert [d.name for d in definitions] == ["code-reviewer"]

    path = project_dir / "reviewer-override.md"
    path.write_text("---\nname: code-reviewer\n---\nProject version.\n")
    clock.now += 0.5
    assert definitions.get("code-reviewer").prompt.startswith("You are a meticulous")  # not re-checked yet
    clock.now += 0.6
    assert definitions.get("code-reviewer").prompt == "Project version."  # later folders win

    path.write_text("---\nname: code-reviewer\n---\nEdited, same second.\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    clock.now += 1.1
    assert definitions.get("code-reviewer").prompt == "Edited, same second."


# --- agent calls --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_agent_calls_in_the_parents_follow_up_request(version: str) -> None:
    follow_up = exchanges(version, "subagent-sync")[-1]["body"]
    (call,) = agent_calls_in(follow_up)
    assert call.subagent_type == "code-reviewer" and call.description == "Review hello.py"
    assert call.prompt.endswith("MARKER-PARENT-PROMPT-91c2") and call.tool_use_id.startswith("toolu_")


def test_agent_calls_in_a_response_message_including_old_task_tool() -> None:
    message = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Delegating."},
            {"type": "tool_use", "id": "t1", "name": "Task", "input": {"prompt": "Find X", "description": "find"}},
            {"type": "tool_use", "id": "t2", "name": "Read", "input": {"file_path": "/a"}},
            {"type": "tool_use", "id": "t3", "name": "Agent", "input": {"description": "no prompt"}},
        ],
    }
    assert agent_calls_in(message) == [AgentCall("t1", "general-purpose", "Find X", "find")]


# --- recognition on the captures ----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rule_1_the_parents_agent_call(version: str, scenario: str) -> None:
    subagent = next(x for x in exchanges(version, scenario) if is_subagent_exchange(x))
    found = recognise_agent(subagent["body"], sender_of(subagent), parent_calls(version, scenario), [OTHER])
    assert found == Recognition("code-reviewer", "agent_call")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rule_2_the_agent_files_prompt(version: str, scenario: str) -> None:
    subagent = next(x for x in exchanges(version, scenario) if is_subagent_exchange(x))
    found = recognise_agent(subagent["body"], sender_of(subagent), [], [OTHER, REVIEWER])
    assert found == Recognition("code-reviewer", "system_prompt")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_parent_requests_are_not_subagents(version: str, scenario: str) -> None:
    for exchange in exchanges(version, scenario):
        if not is_subagent_exchange(exchange):
            found = recognise_agent(exchange["body"], sender_of(exchange), parent_calls(version, scenario), [REVIEWER])
            assert found == Recognition()


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_subagent_is_still_a_subagent(version: str) -> None:
    subagent = next(x for x in exchanges(version, "subagent") if is_subagent_exchange(x))
    assert sender_of(subagent).is_subagent
    assert recognise_agent(subagent["body"], sender_of(subagent), [], [OTHER]) == Recognition()


def test_billing_flag_alone_marks_a_subagent() -> None:
    subagent = next(x for x in exchanges("2.1.197", "subagent") if is_subagent_exchange(x))
    headers = {k: v for k, v in headers_of(subagent).items() if k.lower() != "x-claude-code-agent-id"}
    assert recognise_agent(subagent["body"], sender(headers, subagent["body"]), [], [REVIEWER]).name == "code-reviewer"


def test_agent_prompt_quoted_in_a_non_subagent_request_is_ignored() -> None:
    body = {
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.329.30c;"},
            {"type": "text", "text": REVIEWER.prompt},
        ],
        "messages": [{"role": "user", "content": "Review this transcript."}],
    }
    assert recognise_agent(body, sender({}, body), [], [REVIEWER]) == Recognition()


def built_in_subagent_request(prompt: str) -> dict[str, Any]:
    return {
        "system": [
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=2.1.329.9ab; cc_entrypoint=cli; cc_is_subagent=true;",
            },
            {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK."},
            {"type": "text", "text": "You are a file search specialist for Claude Code. Search broadly."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nToday's date is 2026-11-21.\n</system-reminder>\n\n"},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
    }


def test_built_in_agent_is_recognised_only_by_its_call() -> None:
    prompt = "Find every place that opens a database connection."
    calls = [
        AgentCall("toolu_old", "Plan", "Something else entirely."),
        AgentCall("toolu_1", "Explore", prompt, "Find DB connections"),
    ]
    body = built_in_subagent_request(prompt)
    headers = {"X-Claude-Code-Agent-Id": "a0123456789abcdef"}
    assert recognise_agent(body, sender(headers, body), calls, [REVIEWER]) == Recognition("Explore", "agent_call")
    assert recognise_agent(body, sender(headers, body), calls[:1], [REVIEWER]) == Recognition()


def test_the_latest_call_wins_when_a_prompt_is_reused() -> None:
    calls = [AgentCall("t1", "Plan", "Same prompt."), AgentCall("t2", "Explore", "Same prompt.")]
    body = built_in_subagent_request("Same prompt.")
    found = recognise_agent(body, sender({"x-claude-code-agent-id": "a1"}, body), calls, [])
    assert found.name == "Explore"


def test_longest_matching_agent_prompt_wins() -> None:
    short = AgentDefinition(name="short", prompt="You are a meticulous code reviewer.")
    subagent = next(x for x in exchanges("2.1.329", "subagent") if is_subagent_exchange(x))
    assert recognise_agent(subagent["body"], sender_of(subagent), [], [short, REVIEWER]).name == "code-reviewer"


# --- memory -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_memory_routes_later_turns_of_the_same_agent_like_the_first(version: str) -> None:
    memory = AgentMemory()
    parent, *rest = exchanges(version, "subagent-sync")
    session = headers_of(parent)["X-Claude-Code-Session-Id"]
    memory.remember_calls(session, parent_calls(version, "subagent-sync"))
    subagent = next(x for x in rest if is_subagent_exchange(x))
    assert memory.recognise(subagent["body"], sender_of(subagent), []).name == "code-reviewer"

    later_turn = {**subagent["body"], "messages": [{"role": "user", "content": "Something new."}]}
    fresh = AgentMemory()
    assert fresh.recognise(later_turn, sender(headers_of(subagent), later_turn), []).name is None
    assert memory.recognise(later_turn, sender(headers_of(subagent), later_turn), []).name == "code-reviewer"


def test_memory_is_bounded_lru() -> None:
    memory = AgentMemory(max_sessions=2, max_agents=2, calls_per_session=2)
    for session in ("s1", "s2"):
        memory.remember_calls(session, [AgentCall(f"{session}-t", "Plan", "p")])
    memory.calls("s1")  # s1 is now the most recent
    memory.remember_calls("s3", [AgentCall("s3-t", "Plan", "p")])
    assert memory.calls("s2") == [] and memory.calls("s1") and memory.calls("s3")

    memory.remember_calls("s1", [AgentCall("a", "X", "p"), AgentCall("b", "Y", "p"), AgentCall("a", "X", "p")])
    assert [c.tool_use_id for c in memory.calls("s1")] == ["a", "b"]

    for agent_id in ("a1", "a2", "a3"):
        memory.remember_agent(agent_id, Recognition(agent_id, "agent_call"))
    assert memory.agent("a1") is None and memory.agent("a3") is not None
    memory.remember_agent("a4", Recognition())
    assert memory.agent("a4") is None  # nothing learnt, nothing to remember
