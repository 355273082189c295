"""The session page's view model: threads as turns of messages, each tool call paired with its result and
with the subagent runs it spawned, so that templates only lay things out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from ccbridge.storage.models import Exchange

from . import costs
from .answers import AnswerColumn
from .loader import SessionData
from .messages import Block, Message, blocks, is_agent_call, tool_input, without_reminders
from .threads import SubagentRun, TaskNotification, Thread, Turn, attempts, task_notifications

SHOWN_RESULT_CHARS = 20_000  # of a long tool result, the page carries this much; the rest comes on demand


def clip_result(result: Block, limit: int = SHOWN_RESULT_CHARS) -> tuple[Block, int]:
    """`result` with each text cut to `limit` characters, and the size in bytes of its whole text (0 if nothing
    was cut)."""
    content = result.get("content")
    texts = [content] if isinstance(content, str) else [
        str(item.get("text") or "") for item in content or [] if isinstance(item, dict) and item.get("type") == "text"]
    if all(len(t) <= limit for t in texts):
        return result, 0
    whole = sum(len(t.encode()) for t in texts)
    if isinstance(content, str):
        return {**result, "content": content[:limit]}, whole
    cut = [{**item, "text": str(item.get("text") or "")[:limit]}
           if isinstance(item, dict) and item.get("type") == "text" else item for item in content or []]
    return {**result, "content": cut}, whole


@dataclass
class NoteView:
    """A background subagent's result, come back to the parent as a task notification, and the run it ends."""

    note: TaskNotification
    run: RunView | None

    @property
    def label(self) -> str:
        who = " ".join(p for p in (self.run.subagent_type if self.run else "", self.run.description if self.run
                                   else self.note.summary) if p)
        return f"Result of subagent run {who}".strip()


@dataclass
class BlockView:
    block: Block
    result: Block | None = None  # for a tool_use: its tool_result
    runs: list[RunView] = field(default_factory=list)  # for an Agent/Task call: the subagent runs
    notes: list[NoteView] = field(default_factory=list)  # for a text carrying task notifications
    result_url: str = ""  # for a tool_use: where the whole of a clipped result is fetched

    @property
    def kind(self) -> str:
        return "task_notification" if self.notes else str(self.block.get("type") or "unknown")

    @property
    def input(self) -> Any:
        value = tool_input(self.block)
        if self.runs and is_agent_call(self.block):  # the prompt is shown once, with the run
            return {k: v for k, v in value.items() if k != "prompt"}
        return value

    @property
    def shown_result(self) -> Block | None:
        return None if self.result is None else clip_result(self.result)[0]

    @property
    def clipped(self) -> int:
        """The whole result's size in bytes when the page shows only its start, else 0."""
        return 0 if self.result is None else clip_result(self.result)[1]

    @property
    def clipped_size(self) -> str:
        size = self.clipped
        return f"{size / 1_000_000:.1f} MB" if size >= 1_000_000 else f"{size / 1000:.0f} KB"


@dataclass
class MessageView:
    role: str
    blocks: list[BlockView]


@dataclass
class TurnView:
    number: int
    exchange: Exchange  # the last attempt, whose answer is shown
    cost: Decimal | None
    inputs: list[MessageView]
    answer: MessageView | None
    dropped_answer: bool = False
    shadows: list[AnswerColumn] = field(default_factory=list)  # shadow routes' answers to the same request
    retries: list[Exchange] = field(default_factory=list)  # earlier attempts at the same request, failed
    error: str | None = None  # what went wrong, when the shown attempt failed

    @property
    def anchor(self) -> str:
        """The turn's permalink id: its first attempt's (`x-<exchange id>`, what search results link to)."""
        return f"x-{(self.retries[0] if self.retries else self.exchange).id}"

    @property
    def attempts(self) -> int:
        return len(self.retries) + 1

    @property
    def exchange_ids(self) -> list[int]:
        return [e.id or 0 for e in [*self.retries, self.exchange]]

    @property
    def context_tokens(self) -> int:
        """The context the model read: input plus cache read and cache write tokens."""
        t = self.tokens
        return t.input + t.cache_read + t.cache_write

    @property
    def ttft_ms(self) -> float | None:
        return _ms(self.exchange.started_at, self.exchange.first_byte_at)

    @property
    def duration_ms(self) -> float | None:
        return _ms(self.exchange.started_at, self.exchange.finished_at)

    @property
    def tokens(self) -> costs.Tokens:
        return costs.tokens_of(self.exchange)


@dataclass
class ThreadView:
    thread: Thread
    turns: list[TurnView]
    system: list[Any]
    tools: list[Any]


@dataclass
class RunView:
    run: SubagentRun
    threads: list[ThreadView]
    exchanges: list[Exchange]
    cost: costs.Total

    @property
    def dom_id(self) -> str:
        return f"run-{self.run.agent_id or self.threads[0].thread.id}"

    @property
    def subagent_type(self) -> str:
        return str(tool_input(self.run.call.block).get("subagent_type") or "") if self.run.call else ""

    @property
    def description(self) -> str:
        return str(tool_input(self.run.call.block).get("description") or "") if self.run.call else ""

    @property
    def route(self) -> dict[str, Any] | None:
        return next((e.route for e in self.exchanges if e.route), None)

    @property
    def shadow_routes(self) -> list[str]:
        """The shadow routes that answered copies of this run's requests."""
        return sorted({s.route for t in self.threads for turn in t.turns for s in turn.shadows})

    @property
    def tokens(self) -> costs.Tokens:
        total = costs.Tokens()
        for e in self.exchanges:
            total = total + costs.tokens_of(e)
        return total


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds() * 1000


@dataclass
class Transcript:
    threads: list[ThreadView]
    unlinked_runs: list[RunView]
    side: list[Exchange]


def build_transcript(data: SessionData) -> Transcript:
    """The session's view model; subagent runs nested under their calls, retries folded into one turn."""
    views = _Builder(data)
    threads = [views.thread(t) for t in data.threads.threads]
    unlinked = [views.run(r) for r in data.threads.unlinked_runs]
    side = [data.exchanges[r.id] for r in data.threads.side]
    return Transcript(threads, unlinked, side)


class _Builder:
    def __init__(self, data: SessionData) -> None:
        self.data = data
        self.run_views: dict[int, RunView] = {}  # id(run) -> its view, built once
        self.runs_by_agent = {r.agent_id: r for r in data.threads.runs if r.agent_id}
        self.runs_by_call_id = {r.call.id: r for r in data.threads.runs if r.call is not None}
        self.base = f"/sessions/{quote(data.session_id, safe='')}"

    def run(self, run: SubagentRun) -> RunView:
        known = self.run_views.get(id(run))
        if known is not None:
            return known
        exchanges = [self.data.exchanges[i] for i in run.exchange_ids]
        view = RunView(run, [], exchanges, costs.total(self.data.costs[e.id or 0] for e in exchanges))
        self.run_views[id(run)] = view
        view.threads = [self.thread(t, prompt=run.prompt if i == 0 else "") for i, t in enumerate(run.threads)]
        return view

    def thread(self, thread: Thread, prompt: str = "") -> ThreadView:
        results: dict[str, Block] = {}
        for turn in thread.turns:
            for message in turn.new_messages:
                for block in blocks(message):
                    if block.get("type") == "tool_result" and block.get("tool_use_id"):
                        results.setdefault(str(block["tool_use_id"]), block)
        calls = {str(b.get("id")) for t in thread.turns for m in [*t.new_messages, t.record.answer] if m
                 for b in blocks(m) if b.get("type") == "tool_use"}
        turns = [self.turn(number, group, results, calls, prompt if number == 1 else "")
                 for number, group in enumerate(attempts(thread.turns), start=1)]
        first = thread.turns[0].record.id
        return ThreadView(thread, turns, self.data.system_of(first), self.data.tools_of(first))

    def turn(self, number: int, group: list[Turn], results: dict[str, Block], calls: set[str],
             prompt: str) -> TurnView:
        first, last = group[0], group[-1]
        exchange = self.data.exchanges[last.record.id]
        inputs = [v for v in (self.message(m, results, calls, prompt) for m in first.new_messages) if v.blocks]
        answer = self.message(last.record.answer, results, calls) if last.record.answer else None
        return TurnView(number, exchange, self.data.costs.get(last.record.id), inputs, answer,
                        first.answer_dropped, self.data.shadows.get(last.record.id, []),
                        [self.data.exchanges[t.record.id] for t in group[:-1]], self.data.errors.get(last.record.id))

    def message(self, message: Message, results: dict[str, Block], calls: set[str],
                prompt: str = "") -> MessageView:
        views = []
        for block in blocks(message):
            kind = block.get("type")
            if kind == "tool_result" and str(block.get("tool_use_id")) in calls:
                continue  # shown under its call
            if kind == "text" and prompt and without_reminders(str(block.get("text") or "")) == prompt.strip():
                continue  # a run's prompt, shown once above its turns
            view = BlockView(block)
            if kind == "tool_use":
                view.result = results.get(str(block.get("id")))
                view.runs = [self.run(r) for r in self.data.threads.runs_by_call.get(str(block.get("id")), [])]
                view.result_url = f"{self.base}/tool-result/{quote(str(block.get('id')), safe='')}"
            elif kind == "text":
                view.notes = [NoteView(n, self._run_of(n)) for n in task_notifications(str(block.get("text") or ""))]
            views.append(view)
        return MessageView(str(message.get("role") or "?"), views)

    def _run_of(self, note: TaskNotification) -> RunView | None:
        run = self.runs_by_agent.get(note.task_id) or self.runs_by_call_id.get(note.tool_use_id)
        return self.run(run) if run is not None else None
