"""threads.py on plain data, and on every real Claude Code capture of both CLI versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import captured_requests, fixture_files
from viewer.messages import message_key
from viewer.threads import ExchangeRecord, attempts, build_threads, task_notifications

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def call(tool_id: str, prompt: str, name: str = "Agent") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name,
            "input": {"description": "d", "prompt": prompt, "subagent_type": "code-reviewer"}}


def result(tool_id: str, content: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": content}]}


def record(i: int, messages: list[dict[str, Any]] | None, answer: dict[str, Any] | None = None,
           **kw: Any) -> ExchangeRecord:
    return ExchangeRecord(i, at(i), messages, answer, **kw)


def test_message_key_ignores_form_and_cache_markers() -> None:
    plain = {"role": "user", "content": "hi"}
    blocks = {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
    assert message_key(plain) == message_key(blocks)
    system = {"role": "system", "content": [text("B")]}
    assert message_key({"role": "system", "content": "env A"}) == message_key(system)
    assert message_key(user("a")) != message_key(user("b"))


def test_a_request_continues_the_previous_one_with_its_answer() -> None:
    a1 = assistant(text("hello"))
    records = [
        record(1, [user("hi")], a1),
        record(2, [user("hi"), a1, user("more")], assistant(text("ok"))),
        record(3, [user("unrelated")], assistant(text("x"))),
    ]
    result_ = build_threads(records)
    assert [[t.record.id for t in th.turns] for th in result_.threads] == [[1, 2], [3]]
    assert result_.threads[0].turns[1].new_messages == [user("more")]


def test_retry_and_dropped_answer_stay_in_the_thread() -> None:
    records = [
        record(1, [user("hi")], None),  # failed
        record(2, [user("hi")], assistant(text("hello"))),  # retried
        record(3, [user("hi"), user("interrupted, again")], assistant(text("ok"))),  # answer not resent
    ]
    threads = build_threads(records).threads
    assert len(threads) == 1 and [t.record.id for t in threads[0].turns] == [1, 2, 3]
    assert threads[0].turns[2].answer_dropped


def test_resent_message_in_another_form_still_continues() -> None:
    first = [user("hi"), {"role": "system", "content": [{"type": "text", "text": "env", "cache_control": {}}]}]
    answer = assistant(call("toolu_1", "review it"))
    later = [user("hi"), {"role": "system", "content": "env"}, answer, result("toolu_1", "done")]
    threads = build_threads([record(1, first, answer), record(2, later, assistant(text("fin")))]).threads
    assert len(threads) == 1 and len(threads[0].turns) == 2


def test_compaction_starts_a_linked_thread_and_a_fork_links_back() -> None:
    a1 = assistant(text("one"))
    records = [
        record(1, [user("start")], a1),
        record(2, [user("start"), a1, user("next")], assistant(text("two"))),
        record(3, [user("This session is being continued from a previous conversation. Summary: ...")],
               assistant(text("three"))),
        record(4, [user("start"), a1, user("edited question")], assistant(text("four"))),  # rewind: branch
    ]
    threads = build_threads(records).threads
    assert [(t.continues, t.link) for t in threads] == [(None, None), ("t1", "compaction"), ("t1", "fork")]


def test_side_requests_are_listed_apart() -> None:
    records = [
        record(1, None),  # HEAD probe
        record(2, [user("hi")], assistant(text("hello"))),
        record(3, [user("Write a title for: hi")], assistant(text("Greeting")), has_tools=False),
    ]
    result_ = build_threads(records)
    assert [r.id for r in result_.side] == [1, 3]
    assert len(result_.threads) == 1


@pytest.mark.parametrize("how", ["agent_id", "task_notification", "prompt"])
def test_subagent_run_nests_under_its_call(how: str) -> None:
    answer = assistant(text("delegating"), call("toolu_A", "Review hello.py"))
    if how == "agent_id":
        follow = [user("go"), answer, result("toolu_A", "Fine.\nagentId: a1234 (use SendMessage)")]
    elif how == "task_notification":
        follow = [user("go"), answer, result("toolu_A", "launched"),
                  user("<task-notification>\n<task-id>a1234</task-id>\n<tool-use-id>toolu_A</tool-use-id>"
                       "\n</task-notification>")]
    else:
        follow = [user("go"), answer, result("toolu_A", "Fine.")]
    sub_answer = assistant(text("All good."))
    records = [
        record(1, [user("go")], answer),
        record(2, [{"role": "user", "content": [text("<system-reminder>ctx</system-reminder>"),
                                                text("Review hello.py")]}], sub_answer,
               agent_id="a1234", is_subagent=True),
        record(3, follow, assistant(text("done"))),
    ]
    result_ = build_threads(records)
    assert len(result_.threads) == 1 and len(result_.threads[0].turns) == 2
    (run,) = result_.runs
    assert run.call is not None and run.call.id == "toolu_A" and run.link == how
    assert result_.runs_by_call["toolu_A"] == [run]
    assert run.prompt == "Review hello.py" and run.answer == "All good."
    assert not result_.unlinked_runs


def test_two_runs_with_the_same_prompt_link_in_order() -> None:
    answer = assistant(call("toolu_1", "same"), call("toolu_2", "same"))
    records = [record(1, [user("go")], answer),
               record(2, [user("same")], assistant(text("r1")), agent_id="a1", is_subagent=True),
               record(3, [user("same")], assistant(text("r2")), agent_id="a2", is_subagent=True)]
    result_ = build_threads(records)
    assert [r.call.id for r in result_.runs if r.call] == ["toolu_1", "toolu_2"]


def _sse_answer(mock: dict[str, Any]) -> dict[str, Any] | None:
    if mock.get("kind") == "tool_use":
        return {"role": "assistant", "content": [{"type": "tool_use", **mock["tool_use"]}]}
    if mock.get("kind") == "text":
        return {"role": "assistant", "content": [{"type": "text", "text": mock["text"]}]}
    return None


def fixture_records(path: Path) -> list[ExchangeRecord]:
    records = []
    for request in captured_requests(path):
        body = request["body"] if isinstance(request["body"], dict) else {}
        headers = {k.lower(): v for k, v in request["headers"]}
        records.append(ExchangeRecord(
            request["seq"], datetime.fromisoformat(request["ts"].replace("Z", "+00:00")),
            body.get("messages") if request["method"] == "POST" else None,
            _sse_answer(request.get("mock_response") or {}),
            agent_id=headers.get("x-claude-code-agent-id"),
            is_subagent="cc_is_subagent=true" in json.dumps(body.get("system", "")),
            has_tools=bool(body.get("tools")),
        ))
    return records


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_fixture_threads(path: Path) -> None:
    records = fixture_records(path)
    result_ = build_threads(records)
    posts = [r for r in records if r.messages is not None]
    main_posts = [r for r in posts if not r.agent_id]
    # the whole main conversation is one thread; the HEAD probe (2.1.197) is a side request
    assert len(result_.threads) == 1
    assert [t.record.id for t in result_.threads[0].turns] == [r.id for r in main_posts]
    assert [r.id for r in result_.side] == [r.id for r in records if r.messages is None]
    if path.stem == "hello":
        assert result_.runs == []
        return
    (run,) = result_.runs
    assert run.agent_id and run.agent_id.startswith("a")
    assert run.call is not None and run.call.block["name"] == "Agent"
    assert run.link == "agent_id"  # both modes name the agent id in the Agent call's tool_result
    assert "MARKER-PARENT-PROMPT-91c2" in run.prompt
    assert "MOCK-SUBAGENT-ANSWER" in run.answer
    assert run.call.thread_id == result_.threads[0].id
    assert result_.runs_by_call[run.call.id] == [run]


def test_background_agent_is_also_named_by_its_task_notification() -> None:
    path = next(p for p in fixture_files() if p.parent.name == "2.1.329" and p.stem == "subagent")
    records = fixture_records(path)
    notes = [m for r in records if r.messages for m in r.messages if "<task-notification>" in json.dumps(m)]
    assert notes, "the background capture has a task notification"
    # without the tool_result text, the notification alone places the run
    for r in records:
        for m in r.messages or []:
            for block in m.get("content") if isinstance(m.get("content"), list) else []:
                if block.get("type") == "tool_result":
                    block["content"] = [{"type": "text", "text": "launched"}]
    (run,) = build_threads(records).runs
    assert run.link == "task_notification" and run.call is not None


def edit_call(tool_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "Edit",
            "input": {"file_path": "/src/a.py", "old_string": "a = 1", "new_string": "a = 2", **extra}}


@pytest.mark.parametrize("resent", [
    assistant(text("Editing."), edit_call("toolu_E", replace_all=False)),  # the CLI adds the default
    {"content": [{"name": "Edit", "id": "toolu_E", "type": "tool_use", "input": {  # other key order
        "new_string": "a = 2", "old_string": "a = 1", "file_path": "/src/a.py"}}, text("Editing.")][::-1],
     "role": "assistant"},
    assistant(text("  Editing.\n"), edit_call("toolu_E")),  # whitespace around the text
    {"role": "assistant", "content": [text("Editing."), edit_call("toolu_E")], "id": "msg_1"},
], ids=["edit-replace_all-added", "key-order", "whitespace", "extra-message-field"])
def test_a_resent_answer_continues_its_turn_instead_of_repeating_it(resent: dict[str, Any]) -> None:
    answer = assistant(text("Editing."), edit_call("toolu_E"))
    records = [record(1, [user("fix a.py")], answer),
               record(2, [user("fix a.py"), resent, result("toolu_E", "edited")], assistant(text("Done.")))]
    threads = build_threads(records).threads
    assert len(threads) == 1
    assert [[m.get("role") for m in t.new_messages] for t in threads[0].turns] == [["user"], ["user"]]


def test_a_different_tool_call_is_a_different_message() -> None:
    assert message_key(assistant(edit_call("toolu_1"))) != message_key(assistant(edit_call("toolu_2")))
    assert message_key(assistant(text("a"))) != message_key(assistant(text("b")))


def test_retries_of_a_failed_request_are_one_turn_with_its_attempts() -> None:
    ask = [user("hi")]
    records = [record(1, ask, None, failed=True), record(2, ask, None, failed=True),
               record(3, ask, assistant(text("hello"))),
               record(4, [*ask, assistant(text("hello")), user("more")], assistant(text("ok")))]
    (thread,) = build_threads(records).threads
    assert [[t.record.id for t in group] for group in attempts(thread.turns)] == [[1, 2, 3], [4]]


def test_a_repeated_request_after_a_success_is_not_a_retry() -> None:
    ask = [user("hi")]
    records = [record(1, ask, assistant(text("hello"))), record(2, ask, assistant(text("hello again")))]
    (thread,) = build_threads(records).threads
    assert [[t.record.id for t in group] for group in attempts(thread.turns)] == [[1], [2]]


def test_task_notifications_are_read_from_the_background_capture() -> None:
    path = next(p for p in fixture_files() if p.parent.name == "2.1.329" and p.stem == "subagent")
    texts = [b["text"] for r in fixture_records(path) for m in r.messages or [] if isinstance(m["content"], list)
             for b in m["content"] if b.get("type") == "text" and "<task-notification>" in b["text"]]
    (note,) = task_notifications(texts[-1])
    assert note.task_id.startswith("a") and note.tool_use_id.startswith("toolu_")
    assert note.status == "completed" and "MOCK-SUBAGENT-ANSWER" in note.result
