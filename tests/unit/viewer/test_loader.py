"""viewer/loader.py: a stored session comes back as threads, with each request's messages and the pieces."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from tests.support.builders import Conversation, captured, text, tool_result, tool_use, user, write
from viewer.loader import load_session

START = 1_790_000_000.0


def fill(engine: Engine) -> None:
    clock = [START]
    main = Conversation("s1", clock)
    items = [main.turn([user("Review the parser")],
                       [tool_use("toolu_A", "Agent", {"description": "Review", "prompt": "Check parser.py",
                                                      "subagent_type": "code-reviewer"})])]
    sub = Conversation("s1", clock, agent_id="a0123456789abcdef", tools=[])
    items += [sub.turn([user("Check parser.py")], [text("parser.py looks fine.")])]
    main.messages.append(tool_result("toolu_A", "parser.py looks fine.\nagentId: a0123456789abcdef"))
    items += [main.turn([], [text("The reviewer found nothing.")])]
    items += [captured(None, list(main.headers), clock[0] + 1, method="GET", path="/api/hello", status=200)]
    items += [Conversation("other", [START]).turn([user("not this session")], [text("no")])]
    write(engine, items)


def test_a_session_loads_as_threads_with_its_messages(engine: Engine) -> None:
    fill(engine)
    with Session(engine) as db:
        data = load_session(db, "s1")
    assert data is not None and data.session is not None and data.session.request_count == 4
    assert len(data.exchanges) == 4
    (thread,) = data.threads.threads
    first, second = thread.turns
    assert first.record.messages == [user("Review the parser")]
    assert first.record.answer is not None and first.record.answer["content"][0]["id"] == "toolu_A"
    assert [m["role"] for m in second.record.messages or []] == ["user", "assistant", "user"]
    assert second.new_messages[-1]["content"][0]["tool_use_id"] == "toolu_A"
    (run,) = data.threads.runs
    assert run.agent_id == "a0123456789abcdef" and run.call is not None and run.call.id == "toolu_A"
    assert run.answer == "parser.py looks fine."
    assert [r.messages for r in data.threads.side] == [None]  # the GET probe is not a conversation
    # the pieces hold the system, tools and answers the transcript shows, parsed once
    assert data.system_of(first.record.id)[1]["text"].startswith("You are Claude Code")
    assert [t["name"] for t in data.tools_of(first.record.id)][:2] == ["Agent", "Bash"]
    assert all("not this session" not in str(p) for p in data.pieces.values())


def test_a_missing_session_is_none(engine: Engine) -> None:
    fill(engine)
    with Session(engine) as db:
        assert load_session(db, "no-such-session") is None
