"""What an exchange cost, priced by `ccbridge.prices` (genai-prices); a model it does not know costs None.

Cache writes for 1 hour are priced apart when the answer's `usage.cache_creation` says how many there were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ccbridge import prices
from ccbridge.prices import ANTHROPIC, Tokens

__all__ = ["ANTHROPIC", "Tokens", "Total", "cost", "exchange_cost", "provider_and_model", "tokens_of", "total", "usd"]


def tokens_of(row: Any) -> Tokens:
    """Tokens of an Exchange (or any object with its token columns and `response_message`)."""
    usage = (getattr(row, "response_message", None) or {}).get("usage") or {}
    creation = usage.get("cache_creation") if isinstance(usage, Mapping) else None
    one_hour = creation.get("ephemeral_1h_input_tokens") if isinstance(creation, Mapping) else None
    return Tokens(
        row.input_tokens or 0,
        row.output_tokens or 0,
        row.cache_read_input_tokens or 0,
        row.cache_creation_input_tokens or 0,
        int(one_hour or 0),
    )


def provider_and_model(model: str | None, route: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """Who answered: Anthropic with the requested model, or the route's provider and model."""
    if route:
        provider = route.get("kind") or route.get("provider") or ANTHROPIC
        return str(provider), route.get("model") or model
    return ANTHROPIC, model


def cost(model: str | None, tokens: Tokens, *, provider: str = ANTHROPIC,
         at: datetime | None = None) -> Decimal | None:
    """Price in USD, or None when the model (or provider) is unknown to genai-prices."""
    return prices.cost_usd(provider, model, tokens, at=at)


def exchange_cost(row: Any) -> Decimal | None:
    provider, model = provider_and_model(row.model, row.route)
    return cost(model, tokens_of(row), provider=provider, at=row.started_at)


@dataclass(frozen=True)
class Total:
    """A sum of exchange costs that knows how many of them had no price."""

    priced: Decimal
    unpriced: int = 0

    @property
    def value(self) -> Decimal | None:
        """The whole, or None when a part is unknown (a partial sum must not read as the whole)."""
        return None if self.unpriced else self.priced


def total(costs: Iterable[Decimal | Total | None]) -> Total:
    priced, unpriced = Decimal(0), 0
    for part in costs:
        if isinstance(part, Total):
            priced, unpriced = priced + part.priced, unpriced + part.unpriced
        elif part is None:
            unpriced += 1
        else:
            priced += part
    return Total(priced, unpriced)


def usd(value: Decimal | Total | None) -> str:
    """`$0.12`; for a total with unpriced requests the known part and how many are missing."""
    if isinstance(value, Total):
        if not value.unpriced:
            return usd(value.priced)
        missing = f"{value.unpriced} request{'s' if value.unpriced > 1 else ''} not priced"
        return f"{usd(value.priced)} + {missing}" if value.priced else f"— ({missing})"
    if value is None:
        return "—"
    if value and abs(value) < Decimal("0.01"):
        return f"${value:.4f}"
    return f"${value:,.2f}"
