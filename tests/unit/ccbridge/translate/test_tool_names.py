"""Tool names shortened for the provider (at most 64 characters) and mapped back for Claude Code."""

from __future__ import annotations

import re
from typing import Any

from ccbridge.translate.tool_names import MAX_NAME, original_tool_names, provider_tool_names, short_name

LONG = "mcp__claude_ai_Company_Knowledge_Base__search_documents_by_semantic_similarity_with_filter"  # 90
OPENAI_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def body(*names: str, **extra: Any) -> dict[str, Any]:
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in names]
    return {"tools": tools, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_names_that_fit_are_kept() -> None:
    assert short_name("Read") == "Read"
    assert short_name("mcp__github__create_pull_request") == "mcp__github__create_pull_request"
    assert short_name("x" * 64) == "x" * 64


def test_a_long_name_becomes_a_valid_name_of_at_most_64_characters() -> None:
    assert len(LONG) == 90
    short = short_name(LONG)
    assert len(short) <= MAX_NAME and OPENAI_NAME.fullmatch(short)
    assert short.startswith(LONG[:40])  # still readable in the provider's logs


def test_the_same_name_gives_the_same_short_name_on_every_turn() -> None:
    first = provider_tool_names(body("Read", LONG))
    later = provider_tool_names(body(LONG, "Grep", "Read"))
    assert first[LONG] == later[LONG] == short_name(LONG)


def test_names_sharing_a_long_prefix_stay_apart() -> None:
    other = LONG[:-1] + "X"
    names = provider_tool_names(body(LONG, other))
    assert names[LONG] != names[other]


def test_characters_the_provider_refuses_are_replaced() -> None:
    short = short_name("mcp__my.server__read")
    assert OPENAI_NAME.fullmatch(short) and short != "mcp__my.server__read"


def test_a_clash_with_a_name_already_in_the_request_moves_the_short_name() -> None:
    clash = short_name(LONG)  # a tool that happens to be called like LONG's short name
    names = provider_tool_names(body(LONG, clash))
    assert names[clash] == clash
    assert names[LONG] != clash and len(names[LONG]) <= MAX_NAME
    assert len(set(names.values())) == 2


def test_names_in_the_history_tool_choice_and_tool_references_are_covered() -> None:
    history = "mcp__" + "h" * 80
    chosen = "mcp__" + "c" * 80
    referenced = "mcp__" + "r" * 80
    request = body(
        "Read",
        tool_choice={"type": "tool", "name": chosen},
        messages=[
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": history, "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "tool_reference", "tool_name": referenced}]}]},
        ],
    )
    names = provider_tool_names(request)
    assert {history, chosen, referenced, "Read"} == set(names)
    assert all(len(short) <= MAX_NAME for short in names.values())


def test_original_names_map_only_what_was_changed_back() -> None:
    back = original_tool_names(body("Read", LONG))
    assert back == {short_name(LONG): LONG}
