"""Sums of costs for the pages: totals that know what they could not price, and how money is written.

The price of one exchange comes from `ccbridge.prices` (genai-prices); its names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ccbridge.prices import ANTHROPIC, Tokens, exchange_cost, provider_and_model, tokens_of

__all__ = ["ANTHROPIC", "Tokens", "Total", "exchange_cost", "provider_and_model", "tokens_of", "total", "usd"]


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
