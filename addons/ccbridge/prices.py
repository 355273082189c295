"""What tokens cost in USD: config.yaml's `prices:` first, else the `genai-prices` package; None when neither knows.

`Tokens` counts input the way Anthropic reports it, without the cached part; genai-prices counts cache reads and
writes inside its input, so they are added back before asking it. A configured price has no cache-write rate:
cache writes cost the input rate there, and cache reads do too unless `cache_read` is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from genai_prices import Usage, calc_price

ANTHROPIC = "anthropic"
MILLION = Decimal(1_000_000)


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

    @classmethod
    def of_usage(cls, usage: Mapping[str, Any] | None) -> Tokens:
        """The tokens of an Anthropic `usage` object (as in a message or a `message_delta`); odd values count 0."""
        usage = usage or {}
        creation = usage.get("cache_creation")
        one_hour = creation.get("ephemeral_1h_input_tokens") if isinstance(creation, Mapping) else None
        return cls(_count(usage.get("input_tokens")), _count(usage.get("output_tokens")),
                   _count(usage.get("cache_read_input_tokens")), _count(usage.get("cache_creation_input_tokens")),
                   _count(one_hour))


def tokens_of(row: Any) -> Tokens:
    """Tokens of an Exchange (or any object with its token columns and `response_message`)."""
    usage = (getattr(row, "response_message", None) or {}).get("usage")
    one_hour = Tokens.of_usage(usage if isinstance(usage, Mapping) else None).cache_write_1h
    return Tokens(row.input_tokens or 0, row.output_tokens or 0, row.cache_read_input_tokens or 0,
                  row.cache_creation_input_tokens or 0, one_hour)


def provider_and_model(model: str | None, route: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """Who answered: Anthropic with the requested model, or the route's provider and model."""
    if route:
        provider = route.get("kind") or route.get("provider") or ANTHROPIC
        return str(provider), route.get("model") or model
    return ANTHROPIC, model


def exchange_cost(row: Any) -> Decimal | None:
    """What a recorded exchange cost, from genai-prices (by the route's provider kind when it was routed)."""
    provider, model = provider_and_model(row.model, row.route)
    return cost_usd(provider, model, tokens_of(row), at=row.started_at)


class Rates(Protocol):
    """USD per million tokens, as config.yaml's `prices:` gives them."""

    @property
    def input(self) -> float: ...

    @property
    def output(self) -> float: ...

    @property
    def cache_read(self) -> float | None: ...


def price_key(provider: str, model: str) -> str:
    """How `prices:` names a model: `provider/model`, e.g. `ollama/qwen3:8b`."""
    return f"{provider}/{model}"


def cost_usd(provider: str, model: str | None, usage: Tokens, *, prices: Mapping[str, Rates] | None = None,
             kind: str | None = None, at: datetime | None = None) -> Decimal | None:
    """Price in USD of `usage` on `provider`'s `model`, or None when no price is known.

    `provider` is a name from config.yaml (or "anthropic"); genai-prices is asked by `kind` (the provider's
    kind, e.g. openai or openrouter) when given, since a provider's name is the user's own word.
    """
    if not usage.total:
        return Decimal(0)  # a probe or a failed request: nothing was used, whatever the model
    if not model:
        return None
    configured = (prices or {}).get(price_key(provider, model))
    if configured is not None:
        return configured_cost(configured, usage)
    return genai_cost(kind or provider, model, usage, at.date().isoformat() if at else None)


def configured_cost(rates: Rates, usage: Tokens) -> Decimal:
    def rate(value: float) -> Decimal:
        return Decimal(str(value))  # via str: 0.1 is ten cents, not the float's binary neighbour

    cache_read = rates.input if rates.cache_read is None else rates.cache_read
    return (rate(rates.input) * (usage.input + usage.cache_write) + rate(rates.output) * usage.output
            + rate(cache_read) * usage.cache_read) / MILLION


@lru_cache(maxsize=65536)
def genai_cost(provider: str, model: str, usage: Tokens, day: str | None = None) -> Decimal | None:
    """genai-prices' price (as of `day`, ISO, when given), or None when it does not know the provider or model."""
    kwargs: dict[str, int] = {
        "input_tokens": usage.input + usage.cache_read + usage.cache_write,
        "output_tokens": usage.output,
    }
    if usage.cache_read:
        kwargs["cache_read_tokens"] = usage.cache_read
    if usage.cache_write:
        kwargs["cache_write_tokens"] = usage.cache_write
        if usage.cache_write_1h:
            kwargs["cache_write_1h_tokens"] = usage.cache_write_1h
            kwargs["cache_write_5m_tokens"] = usage.cache_write - usage.cache_write_1h
    when = datetime.fromisoformat(day) if day else None
    try:
        return calc_price(Usage(**kwargs), model, provider_id=provider, genai_request_timestamp=when).total_price
    except (LookupError, ValueError):
        return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
