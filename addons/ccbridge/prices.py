"""What tokens cost, from the `genai-prices` package; a model it does not know costs None, not a guess.

Anthropic reports `input_tokens` without the cached part; genai-prices counts cache reads and writes inside
`input_tokens`, so they are added back before pricing. Cache writes for 1 hour are priced apart when the
answer's `usage.cache_creation` says how many there were. Used by the viewer and by `alternate.ask`.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def usage_tokens(usage: Mapping[str, Any] | None) -> Tokens:
    """Tokens of an Anthropic `usage` object."""
    usage = usage or {}
    creation = usage.get("cache_creation")
    one_hour = creation.get("ephemeral_1h_input_tokens") if isinstance(creation, Mapping) else None
    return Tokens(_count(usage.get("input_tokens")), _count(usage.get("output_tokens")),
                  _count(usage.get("cache_read_input_tokens")), _count(usage.get("cache_creation_input_tokens")),
                  _count(one_hour))


def tokens_of(row: Any) -> Tokens:
    """Tokens of an Exchange (or any object with its token columns and `response_message`)."""
    usage = (getattr(row, "response_message", None) or {}).get("usage")
    one_hour = usage_tokens(usage if isinstance(usage, Mapping) else None).cache_write_1h
    return Tokens(
        row.input_tokens or 0,
        row.output_tokens or 0,
        row.cache_read_input_tokens or 0,
        row.cache_creation_input_tokens or 0,
        one_hour,
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


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
