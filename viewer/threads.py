"""Threads of a Claude Code session, found from the requests' messages alone. Pure: plain data in and out.

Each request resends the whole conversation. Request B continues request A (in the same agent) when B's
messages, compared in normalized form (see `messages.message_key`), start with A's messages followed by
A's answer; a retry resends A's messages alone. A request that continues nothing starts a thread; one whose
first prompt says the conversation is continued from a summary is linked to the thread it replaced
(compaction), and one that branches off an earlier request is linked to that thread (a fork).

Subagent requests carry `agent_id`; a run (all requests of one agent id) is attached to the parent's
`Agent`/`Task` call found, in this order, by the agent id in the call's tool_result (`agentId: a…`), by a
`<task-notification>` naming the task and the tool use, or by the call's `prompt` equal to the run's first
user message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .messages import Block, Message, blocks, first_prompt, is_agent_call, message_key, message_text, tool_input

COMPACTION_MARKERS = ("continued from a previous conversation", "this session is being continued")
_AGENT_ID = re.compile(r"agentId:\s*([A-Za-z0-9_-]+)")
_NOTIFICATION = re.compile(r"<task-notification>(.*?)</task-notification>", re.S)


@dataclass
class ExchangeRecord:
    """What threading needs of one exchange."""

    id: int
    started_at: datetime
    messages: Sequence[Message] | None  # None: not a Messages request (a probe, a count, an unparsed body)
    answer: Message | None = None
    agent_id: str | None = None
    is_subagent: bool = False
    has_tools: bool = True
    failed: bool = False  # an error status, or a stream that broke off


@dataclass
class Turn:
    record: ExchangeRecord
    new_messages: list[Message]  # what this request added after the previous turn's messages and answer
    answer_dropped: bool = False  # the request did not resend the previous turn's answer


@dataclass
class Thread:
    id: str
    agent_id: str | None
    is_subagent: bool
    turns: list[Turn] = field(default_factory=list)
    continues: str | None = None  # the thread this one follows
    link: str | None = None  # compaction | fork

    @property
    def first_prompt(self) -> str:
        return first_prompt(list(self.turns[0].new_messages)) if self.turns else ""

    @property
    def last_answer(self) -> Message | None:
        for turn in reversed(self.turns):
            if turn.record.answer is not None:
                return turn.record.answer
        return None


@dataclass
class AgentCall:
    thread_id: str
    exchange_id: int
    block: Block

    @property
    def id(self) -> str:
        return str(self.block.get("id"))

    @property
    def prompt(self) -> str:
        return str(tool_input(self.block).get("prompt") or "")


@dataclass
class SubagentRun:
    agent_id: str | None
    threads: list[Thread]
    call: AgentCall | None = None
    link: str | None = None  # agent_id | task_notification | prompt

    @property
    def started_at(self) -> datetime:
        return self.threads[0].turns[0].record.started_at

    @property
    def prompt(self) -> str:
        return self.threads[0].first_prompt

    @property
    def answer(self) -> str:
        last = self.threads[-1].last_answer
        return message_text(last) if last else ""

    @property
    def exchange_ids(self) -> list[int]:
        return [t.record.id for th in self.threads for t in th.turns]


@dataclass
class SessionThreads:
    threads: list[Thread]  # the main agent's threads, in order
    runs: list[SubagentRun]  # every subagent run, in order
    side: list[ExchangeRecord]  # requests outside any thread (probes, titles, unparsed bodies)
    runs_by_call: dict[str, list[SubagentRun]]  # tool_use id -> runs it spawned
    thread_of: dict[int, str]  # exchange id -> thread id

    @property
    def unlinked_runs(self) -> list[SubagentRun]:
        return [r for r in self.runs if r.call is None]

    def thread(self, thread_id: str) -> Thread | None:
        for t in [*self.threads, *(th for r in self.runs for th in r.threads)]:
            if t.id == thread_id:
                return t
        return None


class _Keys:
    """Message keys, computed once per message object (callers share objects between requests)."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Any, str]] = {}

    def __call__(self, message: Message) -> str:
        hit = self._memo.get(id(message))
        if hit is not None and hit[0] is message:
            return hit[1]
        key = message_key(message)
        self._memo[id(message)] = (message, key)
        return key


def _prefix_hashes(keys: list[str]) -> list[int]:
    out, current = [], 0
    for key in keys:
        current = hash((current, key))
        out.append(current)
    return out


def _scope(record: ExchangeRecord) -> str:
    if record.agent_id:
        return f"agent:{record.agent_id}"
    return "subagent" if record.is_subagent else "main"


def _is_compaction(thread: Thread) -> bool:
    prompt = thread.first_prompt.lower()
    return any(marker in prompt[:400] for marker in COMPACTION_MARKERS)


def build_threads(records: Sequence[ExchangeRecord]) -> SessionThreads:
    """Group a session's exchanges into threads and nest subagent runs under their parent's calls."""
    key = _Keys()
    ordered = sorted(records, key=lambda r: (r.started_at, r.id))
    side: list[ExchangeRecord] = []
    # per scope: prefix hash -> (thread, turn index, length); both a tip's messages and messages+answer
    index: dict[str, dict[int, tuple[Thread, int, int]]] = {}
    scoped: dict[str, list[Thread]] = {}
    counter = 0
    for record in ordered:
        if record.messages is None:
            side.append(record)
            continue
        scope = _scope(record)
        keys = [key(m) for m in record.messages]
        hashes = _prefix_hashes(keys)
        known = index.setdefault(scope, {})
        match = next((known[h] for h in reversed(hashes) if h in known), None)
        threads = scoped.setdefault(scope, [])
        if match is not None and match[1] == len(match[0].turns) - 1:
            thread, _, length = match
            previous = thread.turns[-1].record
            dropped = previous.answer is not None and length == len(previous.messages or ())
            thread.turns.append(Turn(record, list(record.messages[length:]), answer_dropped=dropped))
        else:
            counter += 1
            thread = Thread(f"t{counter}", record.agent_id, record.is_subagent or bool(record.agent_id))
            thread.turns.append(Turn(record, list(record.messages[match[2]:] if match else record.messages)))
            if match is not None:
                thread.continues, thread.link = match[0].id, "fork"
            elif threads and _is_compaction(thread):
                thread.continues, thread.link = threads[-1].id, "compaction"
            threads.append(thread)
        position = len(thread.turns) - 1
        known[hashes[-1] if hashes else hash((0, ""))] = (thread, position, len(keys))
        if record.answer is not None:
            known[hash((hashes[-1] if hashes else 0, key(record.answer)))] = (thread, position, len(keys) + 1)

    main = scoped.pop("main", [])
    kept = []
    for thread in main:
        # a one-shot request without tools that nothing continues: a title, a summary, a probe
        if len(thread.turns) == 1 and not thread.turns[0].record.has_tools and thread.continues is None:
            side.append(thread.turns[0].record)
        else:
            kept.append(thread)
    runs = _runs(scoped)
    all_threads = [*kept, *(t for run in runs for t in run.threads)]
    runs_by_call = _link_runs(all_threads, runs)
    thread_of = {turn.record.id: t.id for t in all_threads for turn in t.turns}
    side.sort(key=lambda r: (r.started_at, r.id))
    return SessionThreads(kept, runs, side, runs_by_call, thread_of)


def attempts(turns: Sequence[Turn]) -> list[list[Turn]]:
    """`turns` grouped into attempts at one request: a turn that resends the previous turn's messages
    unchanged after that turn failed (the CLI retrying a 429, a 5xx or a cut stream) joins its group."""
    groups: list[list[Turn]] = []
    for turn in turns:
        if groups and _retries(groups[-1][-1], turn):
            groups[-1].append(turn)
        else:
            groups.append([turn])
    return groups


def _retries(previous: Turn, turn: Turn) -> bool:
    resent = len(turn.record.messages or ()) == len(previous.record.messages or ())
    return previous.record.failed and resent and not turn.new_messages


def _runs(scoped: dict[str, list[Thread]]) -> list[SubagentRun]:
    runs = []
    for scope, threads in scoped.items():
        if scope.startswith("agent:"):
            runs.append(SubagentRun(threads[0].agent_id, threads))
        else:  # subagents without an agent id (older CLIs): each thread is a run of its own
            runs.extend(SubagentRun(None, [t]) for t in threads)
    runs.sort(key=lambda r: r.started_at)
    return runs


def _link_runs(threads: list[Thread], runs: list[SubagentRun]) -> dict[str, list[SubagentRun]]:
    calls: dict[str, AgentCall] = {}
    agent_to_call: dict[str, tuple[str, str]] = {}  # agent id -> (tool_use id, how we know)
    for thread in threads:
        for turn in thread.turns:
            answer = [turn.record.answer] if turn.record.answer is not None else []
            for message in [*turn.new_messages, *answer]:
                for block in blocks(message):
                    if is_agent_call(block) and block.get("id"):
                        calls.setdefault(str(block["id"]), AgentCall(thread.id, turn.record.id, block))
                    _collect_agent_ids(block, agent_to_call)
    linked: dict[str, list[SubagentRun]] = {}
    used: set[str] = set()
    for run in runs:
        found = agent_to_call.get(run.agent_id or "")
        if found and found[0] in calls:
            run.call, run.link = calls[found[0]], found[1]
    for run in runs:  # by prompt only for runs the ids did not place, earliest call first
        if run.call is None:
            prompt = run.prompt.strip()
            for call in calls.values():
                if call.id not in used and prompt and call.prompt.strip() and call.prompt.strip() in prompt:
                    run.call, run.link = call, "prompt"
                    break
        if run.call is not None:
            used.add(run.call.id)
            linked.setdefault(run.call.id, []).append(run)
    return linked


@dataclass
class TaskNotification:
    """A background task's report to its parent, as Claude Code writes it into a user message."""

    task_id: str
    tool_use_id: str
    status: str
    summary: str
    result: str


def _tag(name: str, note: str) -> str:
    match = re.search(rf"<{name}>(.*?)</{name}>", note, re.S)
    return match.group(1).strip() if match else ""


def task_notifications(text: str) -> list[TaskNotification]:
    """Every `<task-notification>` in a message's text, in order."""
    return [TaskNotification(_tag("task-id", n), _tag("tool-use-id", n), _tag("status", n), _tag("summary", n),
                             _tag("result", n)) for n in _NOTIFICATION.findall(text)]


def _collect_agent_ids(block: Block, found: dict[str, tuple[str, str]]) -> None:
    if block.get("type") == "tool_result":
        text = message_text({"content": [block]})
        match = _AGENT_ID.search(text)
        if match and block.get("tool_use_id"):
            found.setdefault(match.group(1), (str(block["tool_use_id"]), "agent_id"))
    elif block.get("type") == "text":
        for note in task_notifications(str(block.get("text") or "")):
            if note.task_id and note.tool_use_id:
                found.setdefault(note.task_id, (note.tool_use_id, "task_notification"))
