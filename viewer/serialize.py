"""JSON shapes of sessions, threads and exchanges, shared by the API and the JSON export."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ccbridge.storage.models import Exchange
from ccbridge.storage.models import Session as SessionRow

from . import costs
from .answers import AnswerColumn
from .limits import Window
from .savings import KindTotal, Report, SavingsRow
from .transcript import BlockView, MessageView, RunView, ThreadView, Transcript, TurnView


def money(value: Decimal | costs.Total | None) -> str | None:
    """As a string; a total with unpriced parts is None here (see `priced` for the known part)."""
    if isinstance(value, costs.Total):
        value = value.value
    return None if value is None else str(value)


def priced(value: Decimal | costs.Total | None) -> dict[str, Any]:
    """The known part of a total and how many requests had no price (a model genai-prices does not know)."""
    if not isinstance(value, costs.Total):
        return {}
    return {"cost_usd_priced": str(value.priced), "unpriced_requests": value.unpriced}


def tokens(value: costs.Tokens) -> dict[str, int]:
    return {"input": value.input, "output": value.output, "cache_read": value.cache_read,
            "cache_write": value.cache_write, "cache_write_1h": value.cache_write_1h}


def session_summary(row: SessionRow, cost: costs.Total) -> dict[str, Any]:
    return {
        "id": row.id, "started_at": row.started_at.isoformat(), "last_activity_at": row.last_activity_at.isoformat(),
        "client_version": row.client_version, "project_dir": row.project_dir, "models": row.models,
        "requests": row.request_count, "subagent_requests": row.subagent_request_count,
        "subagent_runs": row.subagent_runs, "errors": row.error_count, "routed": row.routed_count,
        "tokens": {"input": row.input_tokens, "output": row.output_tokens, "cache_read": row.cache_read_input_tokens,
                   "cache_write": row.cache_creation_input_tokens},
        "cost_usd": money(cost), **priced(cost),
    }


def exchange_summary(row: Exchange, cost: Decimal | None) -> dict[str, Any]:
    def ms(end: Any) -> float | None:
        return None if end is None else round((end - row.started_at).total_seconds() * 1000, 1)

    return {
        "id": row.id, "started_at": row.started_at.isoformat(), "method": row.method, "path": row.path,
        "model": row.model, "status_code": row.status_code, "error_kind": row.error_kind,
        "stop_reason": row.stop_reason, "agent_id": row.agent_id, "is_subagent": row.is_subagent,
        "routed": row.routed, "route": row.route, "tokens": tokens(costs.tokens_of(row)), "cost_usd": money(cost),
        "time_to_first_byte_ms": ms(row.first_byte_at), "duration_ms": ms(row.finished_at),
    }


def answer(column: AnswerColumn) -> dict[str, Any]:
    """One answer of the side-by-side comparison (the original, a replay, a shadow copy)."""
    return {
        "kind": column.kind, "route": column.route, "texts": column.texts, "tool_calls": column.tool_calls,
        "tokens": {"input": column.input_tokens, "output": column.output_tokens},
        "cost_usd": money(column.cost), "time_to_first_byte_ms": column.ttfb_ms, "duration_ms": column.duration_ms,
        "stop_reason": column.stop_reason, "error": column.error,
    }


def limits(windows: list[Window]) -> list[dict[str, Any]]:
    return [w.as_dict() for w in windows]


def _block(view: BlockView) -> dict[str, Any]:
    out = dict(view.block)
    if view.kind == "tool_use":
        out["result"] = view.result
        if view.runs:
            out["subagents"] = [run(r) for r in view.runs]
    return out


def _message(view: MessageView | None) -> dict[str, Any] | None:
    return None if view is None else {"role": view.role, "content": [_block(b) for b in view.blocks]}


def turn(view: TurnView) -> dict[str, Any]:
    return {"exchange": exchange_summary(view.exchange, view.cost), "input": [_message(m) for m in view.inputs],
            "answer": _message(view.answer), "answer_dropped": view.dropped_answer}


def thread(view: ThreadView) -> dict[str, Any]:
    t = view.thread
    return {"id": t.id, "agent_id": t.agent_id, "is_subagent": t.is_subagent, "continues": t.continues,
            "link": t.link, "turns": [turn(v) for v in view.turns]}


def run(view: RunView) -> dict[str, Any]:
    call = view.run.call
    return {
        "agent_id": view.run.agent_id, "link": view.run.link, "tool_use_id": call.id if call else None,
        "subagent_type": view.subagent_type or None, "description": view.description or None,
        "prompt": view.run.prompt, "answer": view.run.answer, "route": view.route,
        "requests": len(view.exchanges), "tokens": tokens(view.tokens),
        "cost_usd": money(view.cost), **priced(view.cost),
        "threads": [thread(t) for t in view.threads],
    }


def session(row: SessionRow | None, cost: costs.Total, transcript: Transcript, windows: list[Window],
            side_costs: dict[int, Decimal | None]) -> dict[str, Any]:
    return {
        "session": session_summary(row, cost) if row else None,
        "limits": limits(windows),
        "threads": [thread(t) for t in transcript.threads],
        "unlinked_subagents": [run(r) for r in transcript.unlinked_runs],
        "side_requests": [exchange_summary(e, side_costs.get(e.id or 0)) for e in transcript.side],
    }


def savings(report: Report) -> dict[str, Any]:
    """The savings report: the method in words, a row per day, agent, kind and pair of models, totals by kind."""
    return {"method": report.method, "rows": [_savings_row(r) for r in report.rows],
            "totals": {"routed": _savings_total(report.routed, estimate=True),
                       "shadow": _savings_total(report.shadow, estimate=False)}}


def _side(cost: costs.Total, **more: Any) -> dict[str, Any]:
    return {**more, "cost_usd": money(cost), **priced(cost)}


def _savings_row(row: SavingsRow) -> dict[str, Any]:
    provider, _, model = row.other.partition("/")
    return {"day": row.day, "agent": row.agent, "kind": row.kind, "requests": row.requests,
            "tokens": tokens(row.tokens),
            "claude": _side(row.claude, model=row.claude_model, estimate=row.estimate),
            "alternative": _side(row.other_cost, provider=provider, model=model),
            "saved_usd": money(row.saved)}


def _savings_total(whole: KindTotal, *, estimate: bool) -> dict[str, Any]:
    left_out = "fell_back_requests" if estimate else "failed_shadows"
    return {"requests": whole.requests, left_out: whole.left_out,
            "claude": _side(whole.claude, estimate=estimate), "alternative": _side(whole.other_cost),
            "saved_usd": money(whole.saved)}
