"""A session's requests on a time axis: a lane for the main thread, one per subagent run, one for side requests.

Pure: the session's threads and exchanges in, lanes of bars out, each bar placed in [0, 1] of the session's
span (start to last byte, time to first byte marked) so that a template draws it at any width.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ccbridge.storage.models import Exchange

from .loader import SessionData, is_failed
from .messages import tool_input


@dataclass
class Bar:
    exchange: Exchange
    start: float  # fraction of the span
    end: float
    first_byte: float | None
    href: str

    @property
    def kind(self) -> str:
        """error | provider (routed elsewhere) | anthropic: what the bar's colour says."""
        if is_failed(self.exchange):
            return "error"
        return "provider" if self.exchange.routed else "anthropic"

    @property
    def route(self) -> str:
        route = self.exchange.route or {}
        return f"{route.get('provider')}/{route.get('model')}" if self.exchange.routed else "Anthropic"


@dataclass
class Lane:
    label: str
    bars: list[Bar] = field(default_factory=list)


@dataclass
class Timeline:
    lanes: list[Lane]
    started: datetime | None
    seconds: float  # the span, first start to last byte

    def ticks(self, count: int = 6) -> list[tuple[float, str]]:
        """Evenly spaced (fraction, label) marks along the axis."""
        return [(i / count, f"{self.seconds * i / count:.1f} s") for i in range(count + 1)]


def _end(e: Exchange) -> datetime:
    return e.finished_at or e.first_byte_at or e.request_done_at or e.started_at


def build_timeline(data: SessionData, turn_href: str) -> Timeline:
    """The lanes of `data`; a bar links to `turn_href` + `#x-<exchange id>` (side requests: their request page)."""
    exchanges = list(data.exchanges.values())
    if not exchanges:
        return Timeline([], None, 0.0)
    t0 = min(e.started_at for e in exchanges)
    span = max((_end(e) - t0).total_seconds() for e in exchanges) or 1.0

    def at(moment: datetime | None) -> float | None:
        return None if moment is None else min(1.0, max(0.0, (moment - t0).total_seconds() / span))

    def bars(ids: Iterable[int], side: bool = False) -> list[Bar]:
        out = []
        for i in ids:
            e = data.exchanges[i]
            href = f"/requests/{i}" if side else f"{turn_href}#x-{i}"
            out.append(Bar(e, at(e.started_at) or 0.0, at(_end(e)) or 0.0, at(e.first_byte_at), href))
        return sorted(out, key=lambda b: (b.start, b.exchange.id or 0))

    main = [t.record.id for th in data.threads.threads for t in th.turns]
    lanes = [Lane("main thread", bars(main))] if main else []
    for run in data.threads.runs:
        call = tool_input(run.call.block) if run.call else {}
        name = " ".join(str(p) for p in (call.get("subagent_type") or "subagent", call.get("description") or "") if p)
        lanes.append(Lane(f"{name} ({run.agent_id or 'no agent id'})", bars(run.exchange_ids)))
    if data.threads.side:
        lanes.append(Lane("side requests", bars((r.id for r in data.threads.side), side=True)))
    return Timeline(lanes, t0, span)
