"""The session page's view model: threads as turns of messages, each tool call paired with its result and
with the subagent runs it spawned, so that templates only lay things out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ccbridge.storage.models import Exchange

from . import costs
from .answers import AnswerColumn
from .loader import SessionData
from .messages import Block, Message, blocks, tool_input
from .threads import SubagentRun, Thread


@dataclass
class BlockView:
    block: Block
    result: Block | None = None  # for a tool_use: its tool_result
    runs: list[RunView] = field(default_factory=list)  # for an Agent/Task call: the subagent runs

    @property
    def kind(self) -> str:
        return str(self.block.get("type") or "unknown")

    @property
    def input(self) -> Any:
        return tool_input(self.block)


@dataclass
class MessageView:
    role: str
    blocks: list[BlockView]


@dataclass
class TurnView:
    number: int
    exchange: Exchange
    cost: Decimal | None
    inputs: list[MessageView]
    answer: MessageView | None
    dropped_answer: bool = False
    shadows: list[AnswerColumn] = field(default_factory=list)  # shadow routes' answers to the same request

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
    views = _Builder(data)
    threads = [views.thread(t) for t in data.threads.threads]
    unlinked = [views.run(r) for r in data.threads.unlinked_runs]
    side = [data.exchanges[r.id] for r in data.threads.side]
    return Transcript(threads, unlinked, side)


class _Builder:
    def __init__(self, data: SessionData) -> None:
        self.data = data

    def run(self, run: SubagentRun) -> RunView:
        exchanges = [self.data.exchanges[i] for i in run.exchange_ids]
        return RunView(run, [self.thread(t) for t in run.threads], exchanges,
                       costs.total(self.data.costs[e.id or 0] for e in exchanges))

    def thread(self, thread: Thread) -> ThreadView:
        results: dict[str, Block] = {}
        for turn in thread.turns:
            for message in turn.new_messages:
                for block in blocks(message):
                    if block.get("type") == "tool_result" and block.get("tool_use_id"):
                        results.setdefault(str(block["tool_use_id"]), block)
        calls = {str(b.get("id")) for t in thread.turns for m in [*t.new_messages, t.record.answer] if m
                 for b in blocks(m) if b.get("type") == "tool_use"}
        turns = []
        for number, turn in enumerate(thread.turns, start=1):
            exchange = self.data.exchanges[turn.record.id]
            inputs = [v for v in (self.message(m, results, calls) for m in turn.new_messages) if v.blocks]
            answer = self.message(turn.record.answer, results, calls) if turn.record.answer else None
            turns.append(TurnView(number, exchange, self.data.costs.get(turn.record.id), inputs, answer,
                                  turn.answer_dropped, self.data.shadows.get(turn.record.id, [])))
        first = thread.turns[0].record.id
        return ThreadView(thread, turns, self.data.system_of(first), self.data.tools_of(first))

    def message(self, message: Message, results: dict[str, Block], calls: set[str]) -> MessageView:
        views = []
        for block in blocks(message):
            kind = block.get("type")
            if kind == "tool_result" and str(block.get("tool_use_id")) in calls:
                continue  # shown under its call
            view = BlockView(block)
            if kind == "tool_use":
                view.result = results.get(str(block.get("id")))
                view.runs = [self.run(r) for r in self.data.threads.runs_by_call.get(str(block.get("id")), [])]
            views.append(view)
        return MessageView(str(message.get("role") or "?"), views)
