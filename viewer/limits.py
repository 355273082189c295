"""Rate-limit windows as a person reads them, from the `ratelimit` JSON the proxy stores per exchange."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NAMES = {"5h": "5-hour", "7d": "weekly"}


@dataclass(frozen=True)
class Window:
    claim: str
    name: str
    utilization: float | None  # fraction spent, can exceed 1
    status: str | None
    reset: datetime | None
    seen_at: datetime | None  # when the response that reported it arrived (the value goes stale)

    @property
    def percent(self) -> str:
        return "—" if self.utilization is None else f"{self.utilization * 100:.0f}%"

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim, "name": self.name, "utilization": self.utilization, "status": self.status,
            "reset": self.reset.isoformat() if self.reset else None,
            "seen_at": self.seen_at.isoformat() if self.seen_at else None,
        }


def _reset(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def windows(ratelimit: Mapping[str, Any] | None, seen_at: datetime | None = None) -> list[Window]:
    """The 5-hour and weekly windows first, then any other claim, as reported."""
    claims = (ratelimit or {}).get("claims") or {}
    if not isinstance(claims, Mapping):
        return []
    order = sorted(claims, key=lambda c: (c not in NAMES, list(NAMES).index(c) if c in NAMES else 0, c))
    out = []
    for claim in order:
        fields = claims[claim] if isinstance(claims[claim], Mapping) else {}
        utilization = fields.get("utilization")
        out.append(Window(
            claim, NAMES.get(claim, claim),
            float(utilization) if isinstance(utilization, (int, float)) else None,
            fields.get("status") if isinstance(fields.get("status"), str) else None,
            _reset(fields.get("reset")), seen_at,
        ))
    return out
