"""The answers to one request side by side: the original, then other models' (`ccbridge replay`, shadow copies)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ccbridge.prices import exchange_cost, tokens_of
from ccbridge.storage.models import AlternateAnswer, Exchange


@dataclass(frozen=True)
class AnswerColumn:
    """One answer as the request page and the API show it."""

    kind: str  # original | replay | shadow
    route: str  # provider/model
    texts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # tool_use blocks: name, input
    input_tokens: int | None = None  # cached ones included
    output_tokens: int | None = None
    cost: Decimal | None = None
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    stop_reason: str | None = None
    error: str | None = None


def answer_columns(row: Exchange, answer: Mapping[str, Any] | None,
                   alternates: list[AlternateAnswer]) -> list[AnswerColumn]:
    """The original answer first, then each alternate in the order stored."""
    return [original_column(row, answer), *(alternate_column(a) for a in alternates)]


def original_column(row: Exchange, answer: Mapping[str, Any] | None) -> AnswerColumn:
    route = row.route or {}
    label = f"{route.get('provider')}/{route.get('model')}" if route.get("provider") else f"anthropic/{row.model}"
    tokens = tokens_of(row)
    texts, calls = _blocks(answer)
    error = f"{row.error_kind}: {row.error_message}" if row.error_kind else None
    return AnswerColumn(
        "original", label, texts, calls, tokens.input + tokens.cache_read + tokens.cache_write, tokens.output,
        exchange_cost(row), _ms(row, row.first_byte_at), _ms(row, row.finished_at), row.stop_reason, error,
    )


def alternate_column(alternate: AlternateAnswer) -> AnswerColumn:
    answer = alternate.answer
    texts, calls = _blocks(answer)
    cached = alternate.cache_read_tokens or 0
    input_tokens = None if alternate.input_tokens is None else alternate.input_tokens + cached
    cost = None if alternate.cost_usd is None else Decimal(str(alternate.cost_usd))
    stop = answer.get("stop_reason") if isinstance(answer, Mapping) else None
    return AnswerColumn(
        alternate.kind, f"{alternate.provider}/{alternate.model}", texts, calls, input_tokens,
        alternate.output_tokens, cost, alternate.ttfb_ms, alternate.duration_ms,
        stop if isinstance(stop, str) else None, alternate.error,
    )


def _blocks(answer: Mapping[str, Any] | None) -> tuple[list[str], list[dict[str, Any]]]:
    content = answer.get("content") if isinstance(answer, Mapping) else None
    blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
    texts = [str(b.get("text") or "") for b in blocks if b.get("type") == "text"]
    calls = [{"name": str(b.get("name") or ""), "input": b.get("input")} for b in blocks if b.get("type") == "tool_use"]
    return texts, calls


def _ms(row: Exchange, at: Any) -> float | None:
    return None if at is None else (at - row.started_at).total_seconds() * 1000
