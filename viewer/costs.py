"""What an exchange cost, from the `genai-prices` package; a model it does not know costs None, not a guess.

Anthropic reports `input_tokens` without the cached part; genai-prices counts cache reads and writes inside
`input_tokens`, so they are added back before pricing. Cache writes for 1 hour are priced apart when the
answer's `usage.cache_creation` says how many there were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from genai_prices import Usage, calc_price

ANTHROPIC = "anthropic"


@dataclass(frozen=True)
class Tokens:
    input: int = 0  # not cached
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0  # part of cache_write

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int, int]:
        return (self.input, self.output, self.cache_read, self.cache_write, self.cache_write_1h)

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write


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


@lru_cache(maxsize=65536)
def _price(provider: str, model: str, tokens: Tokens, day: str | None) -> Decimal | None:
    kwargs: dict[str, int] = {
        "input_tokens": tokens.input + tokens.cache_read + tokens.cache_write,
        "output_tokens": tokens.output,
    }
    if tokens.cache_read:
        kwargs["cache_read_tokens"] = tokens.cache_read
    if tokens.cache_write:
        kwargs["cache_write_tokens"] = tokens.cache_write
        if tokens.cache_write_1h:
            kwargs["cache_write_1h_tokens"] = tokens.cache_write_1h
            kwargs["cache_write_5m_tokens"] = tokens.cache_write - tokens.cache_write_1h
    when = datetime.fromisoformat(day) if day else None
    try:
        return calc_price(Usage(**kwargs), model, provider_id=provider, genai_request_timestamp=when).total_price
    except (LookupError, ValueError):
        return None


def cost(model: str | None, tokens: Tokens, *, provider: str = ANTHROPIC,
         at: datetime | None = None) -> Decimal | None:
    """Price in USD, or None when the model (or provider) is unknown to genai-prices."""
    if not tokens.total:
        return Decimal(0)  # a probe or a failed request: nothing was used, whatever the model
    if not model:
        return None
    return _price(provider, model, tokens, at.date().isoformat() if at else None)


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
