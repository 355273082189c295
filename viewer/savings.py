"""The savings report: per day and agent, what routed requests cost at their provider against what the Claude
model asked for would have cost (an estimate), and both real costs of each shadow pair.

`pairs_*` read the database; `summarize` is pure. Prices come from `ccbridge.prices` with config.yaml's `prices:`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy
from sqlmodel import Session, col

from ccbridge.prices import ANTHROPIC, Rates, cost_usd, price_key
from ccbridge.storage.models import AlternateAnswer, Exchange

from .costs import Tokens, Total, tokens_of, total
from .queries import started_between

Kind = Literal["routed", "shadow"]

METHOD = (
    "Routed requests: the provider's cost is its price for the tokens it reported; what Claude would have cost "
    "is an estimate, the same token counts priced at the rates of the Claude model that was asked for (the "
    "provider's tokenizer counts differently from Claude's, so the real Claude count would differ). Requests "
    "that fell back to Anthropic are left out. Shadow pairs: both costs are real, the Claude answer's and the "
    "shadow model's answer to the same request (a shadow that failed is left out). Prices: the prices in "
    "config.yaml first, else genai-prices; a request without a price is counted as not priced, never as free."
)


@dataclass(frozen=True)
class Pair:
    """One request priced twice: on Claude (`claude`) and on the other route (`other`, as provider/model)."""

    day: str
    agent: str
    kind: Kind
    claude_model: str | None
    other: str
    tokens: Tokens
    claude: Decimal | None
    other_cost: Decimal | None


@dataclass
class SavingsRow:
    day: str
    agent: str
    kind: Kind
    claude_model: str | None
    other: str
    requests: int = 0
    tokens: Tokens = field(default_factory=Tokens)
    claude: Total = field(default_factory=lambda: Total(Decimal(0)))
    other_cost: Total = field(default_factory=lambda: Total(Decimal(0)))

    @property
    def estimate(self) -> bool:
        """Whether the Claude side is an estimate (routed) rather than what Claude charged (shadow)."""
        return self.kind == "routed"

    @property
    def saved(self) -> Decimal | None:
        return saved(self.claude, self.other_cost)


@dataclass
class KindTotal:
    requests: int = 0
    left_out: int = 0  # fell back to Anthropic (routed) or failed (shadow)
    claude: Total = field(default_factory=lambda: Total(Decimal(0)))
    other_cost: Total = field(default_factory=lambda: Total(Decimal(0)))

    @property
    def saved(self) -> Decimal | None:
        return saved(self.claude, self.other_cost)


@dataclass
class Report:
    rows: list[SavingsRow]
    routed: KindTotal
    shadow: KindTotal
    method: str = METHOD


def saved(claude: Total, other: Total) -> Decimal | None:
    """Claude's cost minus the other route's; None unless both are wholly priced."""
    if claude.value is None or other.value is None:
        return None
    return claude.value - other.value


def summarize(pairs: Iterable[Pair], left_out: Mapping[Kind, int] | None = None) -> Report:
    """Sum pairs by day, agent, kind, Claude model and other route; and by kind over everything."""
    groups: dict[tuple[str, str, Kind, str | None, str], SavingsRow] = {}
    totals: dict[Kind, KindTotal] = {"routed": KindTotal(), "shadow": KindTotal()}
    for kind, count in (left_out or {}).items():
        totals[kind].left_out = count
    for pair in pairs:
        key = (pair.day, pair.agent, pair.kind, pair.claude_model, pair.other)
        row = groups.setdefault(key, SavingsRow(*key))
        row.requests += 1
        row.tokens = row.tokens + pair.tokens
        row.claude = total([row.claude, pair.claude])
        row.other_cost = total([row.other_cost, pair.other_cost])
        whole = totals[pair.kind]
        whole.requests += 1
        whole.claude = total([whole.claude, pair.claude])
        whole.other_cost = total([whole.other_cost, pair.other_cost])
    rows = sorted(groups.values(), key=lambda r: (r.day, r.agent, r.kind, r.claude_model or "", r.other))
    return Report(rows, totals["routed"], totals["shadow"])


def report(db: Session, prices: Mapping[str, Rates], since: date | None = None,
           until: date | None = None) -> Report:
    """The savings report over exchanges started from `since` to `until` (whole UTC days, both included)."""
    routed, fell_back = routed_pairs(db, prices, since, until)
    shadow, failed = shadow_pairs(db, prices, since, until)
    return summarize([*routed, *shadow], {"routed": fell_back, "shadow": failed})


_EXCHANGE_COLUMNS = (col(Exchange.started_at), col(Exchange.model), col(Exchange.route), col(Exchange.is_subagent),
                     col(Exchange.path), col(Exchange.input_tokens), col(Exchange.output_tokens),
                     col(Exchange.cache_read_input_tokens), col(Exchange.cache_creation_input_tokens),
                     col(Exchange.response_message))


def routed_pairs(db: Session, prices: Mapping[str, Rates], since: date | None = None,
                 until: date | None = None) -> tuple[list[Pair], int]:
    """Each routed request priced at its provider and, as an estimate, at the Claude model asked for; and how
    many fell back to Anthropic (left out)."""
    query = started_between(sqlalchemy.select(*_EXCHANGE_COLUMNS).where(col(Exchange.routed).is_(True)), since, until)
    pairs: list[Pair] = []
    fell_back = 0
    for row in db.connection().execute(query).all():
        route: dict[str, Any] = row.route or {}
        if _counts_tokens_only(row.path):
            continue
        if route.get("fell_back"):
            fell_back += 1
            continue
        provider, model = str(route.get("provider") or ""), str(route.get("model") or "")
        claude_model = route.get("requested_model") or row.model
        tokens = tokens_of(row)
        pairs.append(Pair(
            row.started_at.date().isoformat(), agent_of(row), "routed", claude_model, price_key(provider, model),
            tokens, cost_usd(ANTHROPIC, claude_model, tokens, prices=prices, at=row.started_at),
            cost_usd(provider, model, tokens, prices=prices, kind=route.get("kind"), at=row.started_at),
        ))
    return pairs, fell_back


def shadow_pairs(db: Session, prices: Mapping[str, Rates], since: date | None = None,
                 until: date | None = None) -> tuple[list[Pair], int]:
    """Each shadowed request: what its Claude answer cost and what the shadow's answer cost; and how many
    shadows failed (left out)."""
    alternate: tuple[Any, ...] = (col(AlternateAnswer.provider).label("shadow_provider"),
                                  col(AlternateAnswer.model).label("shadow_model"),
                                  col(AlternateAnswer.cost_usd), col(AlternateAnswer.error))
    query = (sqlalchemy.select(*_EXCHANGE_COLUMNS, *alternate)
             .join(AlternateAnswer, col(AlternateAnswer.exchange_id) == col(Exchange.id))
             .where(col(AlternateAnswer.kind) == "shadow"))
    pairs: list[Pair] = []
    failed = 0
    for row in db.connection().execute(started_between(query, since, until)).all():
        if row.error:
            failed += 1
            continue
        tokens = tokens_of(row)
        shadow_cost = None if row.cost_usd is None else Decimal(str(row.cost_usd))
        pairs.append(Pair(
            row.started_at.date().isoformat(), agent_of(row), "shadow", row.model,
            price_key(row.shadow_provider, row.shadow_model), tokens,
            cost_usd(ANTHROPIC, row.model, tokens, prices=prices, at=row.started_at), shadow_cost,
        ))
    return pairs, failed


def agent_of(row: Any) -> str:
    """A routed agent's name, else `subagent` or `main` (as on the usage table)."""
    return str((row.route or {}).get("agent") or ("subagent" if row.is_subagent else "main"))


def _counts_tokens_only(path: str | None) -> bool:
    # count_tokens of a routed agent is answered locally: no answer, nothing to price
    return bool(path) and str(path).rstrip("/").endswith("/count_tokens")

