"""Fill a capture database the way the proxy does (the real Writer), from the fixtures or from synthetic
conversations, for viewer tests, browser tests and the benchmark."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from ccbridge.captured import CapturedExchange
from ccbridge.storage.writer import Writer
from tests.fixtures import captured_requests
from tests.support.mock_anthropic import message_events, sse_event

RATELIMIT_HEADERS = [
    ("anthropic-ratelimit-unified-status", "allowed"),
    ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
    ("anthropic-ratelimit-unified-5h-status", "allowed"),
    ("anthropic-ratelimit-unified-5h-utilization", "0.42"),
    ("anthropic-ratelimit-unified-5h-reset", "1795000000"),
    ("anthropic-ratelimit-unified-7d-status", "allowed_warning"),
    ("anthropic-ratelimit-unified-7d-utilization", "0.81"),
    ("anthropic-ratelimit-unified-7d-reset", "1795400000"),
]
_flows = itertools.count(1)


def sse_answer(content: list[dict[str, Any]], model: str, message_id: str | None = None,
               output_tokens: int = 42) -> bytes:
    """The SSE stream of an answer; thinking blocks (which the mock's helper does not make) are spliced in."""
    plain = [b for b in content if b["type"] != "thinking"]
    frames = message_events(plain, model=model, message_id=message_id, output_tokens=output_tokens)
    if len(plain) == len(content):
        return b"".join(frames)
    # renumber: thinking blocks first (as the API sends them), then the rest shifted
    thinking = [b for b in content if b["type"] == "thinking"]
    shifted = []
    for frame in frames:
        event, _, data = frame.decode().partition("\ndata: ")
        payload = json.loads(data)
        if "index" in payload:
            payload["index"] += len(thinking)
        shifted.append(sse_event(event.removeprefix("event: "), payload))
    extra = []
    for i, block in enumerate(thinking):
        extra += [sse_event("content_block_start", {"type": "content_block_start", "index": i,
                                                    "content_block": {"type": "thinking", "thinking": ""}}),
                  sse_event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                      "type": "thinking_delta", "thinking": block["thinking"]}}),
                  sse_event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                    "delta": {"type": "signature_delta",
                                                              "signature": block.get("signature", "")}}),
                  sse_event("content_block_stop", {"type": "content_block_stop", "index": i})]
    return b"".join([shifted[0], *extra, *shifted[1:]])


def captured(body: Any, headers: list[tuple[str, str]], started: float, *, answer: bytes = b"",
             status: int = 200, method: str = "POST", path: str = "/v1/messages",
             response_headers: Iterable[tuple[str, str]] = (), route: dict[str, Any] | None = None,
             error_kind: str | None = None) -> CapturedExchange:
    raw = json.dumps(body).encode() if body is not None else b""
    content_type = "text/event-stream; charset=utf-8" if answer.startswith(b"event:") else "application/json"
    return CapturedExchange(
        flow_id=f"flow-{next(_flows)}", started_at=started, method=method, scheme="https", host="api.anthropic.com",
        port=443, path=path, query=[("beta", "true")] if method == "POST" else [], http_version="HTTP/1.1",
        request_headers=headers, request_body=raw, request_done_at=started + 0.01, status_code=status,
        response_headers=[("content-type", content_type), *response_headers], first_byte_at=started + 0.2,
        finished_at=started + 0.9, response_chunks=[answer] if answer else [],
        chunk_times=[started + 0.9] if answer else [], complete=error_kind is None, error_kind=error_kind, route=route,
    )


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def fixture_captures(path: Path) -> list[CapturedExchange]:
    """Every request of a fixture file with the answer its mock sent, as SSE, plus rate-limit headers."""
    out = []
    for request in captured_requests(path):
        mock = request.get("mock_response") or {}
        headers = [tuple(h) for h in request["headers"]]
        started = _epoch(request["ts"])
        if request["method"] != "POST":
            out.append(captured(None, headers, started, status=mock.get("status", 404), method=request["method"],
                                path=request["path"]))
            continue
        if mock.get("kind") == "tool_use":
            content = [{"type": "tool_use", **mock["tool_use"]}]
        else:
            content = [{"type": "text", "text": mock.get("text", "")}]
        answer = sse_answer(content, request["body"].get("model", "claude"), mock.get("message_id"))
        out.append(captured(request["body"], headers, started, answer=answer,
                            response_headers=[("request-id", mock.get("request_id", "req")), *RATELIMIT_HEADERS]))
    return out


def write(engine: Engine, items: Iterable[CapturedExchange]) -> None:
    writer = Writer(engine, batch_size=500)
    for item in items:
        writer.submit(item)
    writer.close()
    assert writer.failed == 0


TOOLS = [
    {"name": name, "description": f"The {name} tool.", "input_schema": {"type": "object", "properties": {}}}
    for name in ("Agent", "Bash", "Read", "Edit", "Grep")
]


class Conversation:
    """A synthetic Claude Code thread: each `turn` sends the whole history, as the CLI does."""

    def __init__(self, session_id: str, clock: list[float], *, agent_id: str | None = None,
                 model: str = "claude-sonnet-4-5", system: str = "You are Claude Code, a coding assistant.",
                 tools: list[dict[str, Any]] | None = None, extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        self.session_id, self.clock, self.agent_id, self.model = session_id, clock, agent_id, model
        billing = "x-anthropic-billing-header: cc_version=2.1.329; cc_entrypoint=cli;" + (
            " cc_is_subagent=true;" if agent_id else "")
        self.system = [{"type": "text", "text": billing}, {"type": "text", "text": system}]
        self.tools = TOOLS if tools is None else tools
        self.messages: list[dict[str, Any]] = []
        self.headers = [("user-agent", "claude-cli/2.1.329 (external, cli)"), ("x-app", "cli"),
                        ("x-claude-code-session-id", session_id), ("anthropic-version", "2023-06-01"),
                        ("x-api-key", "sk-ant-api03-test-key-000000000000"), *extra_headers]
        if agent_id:
            self.headers.append(("x-claude-code-agent-id", agent_id))

    def turn(self, new_messages: list[dict[str, Any]], answer: list[dict[str, Any]], *, status: int = 200,
             response_headers: Iterable[tuple[str, str]] = RATELIMIT_HEADERS, route: dict[str, Any] | None = None,
             output_tokens: int = 42) -> CapturedExchange:
        self.messages += new_messages
        body = {"model": self.model, "max_tokens": 32000, "stream": True, "system": self.system,
                "tools": self.tools, "messages": copy.deepcopy(self.messages),
                "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "",
                                                    "session_id": self.session_id})}}
        self.clock[0] += 2.0
        sse = sse_answer(answer, route["model"] if route else self.model, output_tokens=output_tokens) \
            if status == 200 else b""
        item = captured(body, list(self.headers), self.clock[0], answer=sse, status=status,
                        response_headers=response_headers, route=route)
        if status == 200:
            self.messages.append({"role": "assistant", "content": answer})
        return item


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(tool_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def tool_result(tool_id: str, content: str, is_error: bool = False) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id,
                                         "content": [{"type": "text", "text": content}], "is_error": is_error}]}


def big_session(session_id: str, turns: int = 200, runs: int = 10, start: float = 1_790_000_000.0,
                words: int = 60) -> list[CapturedExchange]:
    """A main thread of `turns` requests with tool calls, `runs` of which delegate to a subagent (3 turns each)."""
    clock = [start]
    main = Conversation(session_id, clock)
    out = [main.turn([user("Please refactor the project. " + "context " * words)],
                     [text("Let me look around."), tool_use("toolu_0", "Bash", {"command": "ls -la"})])]
    delegate_every = max(1, turns // (runs + 1))
    launched = 0
    for i in range(1, turns):
        previous = main.messages[-1]["content"][-1]
        if launched < runs and i % delegate_every == 0:
            call = f"toolu_agent_{i}"
            agent = f"a{i:016x}"
            prompt = f"Review module {i} for bugs. " + "detail " * words
            out.append(main.turn([tool_result(previous["id"], "output line\n" * 20)],
                                 [tool_use(call, "Agent", {"description": f"Review {i}", "prompt": prompt,
                                                           "subagent_type": "code-reviewer"})]))
            sub = Conversation(session_id, clock, agent_id=agent, tools=TOOLS[1:3])
            out.append(sub.turn([user(prompt)], [tool_use(f"toolu_s{i}a", "Read", {"file_path": f"/src/m{i}.py"})]))
            out.append(sub.turn([tool_result(f"toolu_s{i}a", "def f():\n    return 1\n" * 10)],
                                [tool_use(f"toolu_s{i}b", "Grep", {"pattern": "TODO"})]))
            out.append(sub.turn([tool_result(f"toolu_s{i}b", "no matches")], [text(f"Module {i} looks fine.")]))
            main.messages.append(tool_result(call, f"Module {i} looks fine.\nagentId: {agent} (use SendMessage)"))
            out.append(main.turn([], [text(f"Step {i}: " + "analysis " * words),
                                      tool_use(f"toolu_{i}", "Edit", {"file_path": f"/src/m{i}.py",
                                                                       "old_string": "a = 1", "new_string": "a = 2"})]))
            launched += 1
            continue
        out.append(main.turn([tool_result(previous["id"], ("line of output " * 8 + "\n") * 5)],
                             [text(f"Step {i}: " + "analysis " * words),
                              tool_use(f"toolu_{i}", "Bash", {"command": f"pytest -k test_{i}"})]))
    return out
