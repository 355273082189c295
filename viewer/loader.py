"""Load one session from storage into threads: few queries, each piece parsed once and shared.

The message lists of all requests are read together: one walk up the prefix tree from every request's last
message (`read.message_paths`: shared prefixes are walked once), then each distinct piece is parsed once,
so a 200-turn session costs a few thousand small rows, not 200 full conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from ccbridge.storage import read
from ccbridge.storage.models import Exchange
from ccbridge.storage.models import Session as SessionRow

from . import costs, failures
from .answers import AnswerColumn, alternate_column
from .costs import Total
from .threads import ExchangeRecord, SessionThreads, build_threads

# Columns the transcript does not show: large, and read only by the request page.
_HEAVY = ("sse_event_times", "request_header_values", "response_headers", "provider_request", "cache_marks",
          "user_agent", "error_message")


NO_SKELETON = read.Skeleton({}, None, None)
SHADOW = "shadow"  # AlternateAnswer.kind of a shadow route's answer


def is_failed(row: Exchange) -> bool:
    """An error status, or an exchange that broke off before its end."""
    return bool(row.error_kind) or (row.status_code or 0) >= 400


@dataclass
class SessionData:
    session: SessionRow | None
    exchanges: dict[int, Exchange]
    threads: SessionThreads
    pieces: dict[str, Any]  # blob hash -> parsed JSON
    skeletons: dict[str, read.Skeleton]  # request skeleton hash -> skeleton
    costs: dict[int, Decimal | None]  # hides the module `costs` in this class body, hence `Total` by name
    shadows: dict[int, list[AnswerColumn]] = field(default_factory=dict)  # exchange id -> shadow answers
    errors: dict[int, str] = field(default_factory=dict)  # failed exchange id -> what went wrong, in words
    session_id: str = ""
    records: list[ExchangeRecord] = field(default_factory=list)  # what the threads were built from

    def as_of(self, last_id: int) -> SessionData:
        """The session as it was when `last_id` was its newest exchange (what an open page shows)."""
        return replace(self, threads=build_threads([r for r in self.records if r.id <= last_id]))

    @property
    def total_cost(self) -> Total:
        return costs.total(self.costs.values())

    def system_of(self, exchange_id: int) -> list[Any]:
        refs = self._skeleton(exchange_id).system_refs or []
        return [self.pieces[h] for h in refs if h in self.pieces]

    def tools_of(self, exchange_id: int) -> list[Any]:
        refs = self._skeleton(exchange_id).tool_refs or []
        return [self.pieces[h] for h in refs if h in self.pieces]

    def _skeleton(self, exchange_id: int) -> read.Skeleton:
        return self.skeletons.get(self.exchanges[exchange_id].request_skeleton_hash or "", NO_SKELETON)


def load_session(db: Session, session_id: str) -> SessionData | None:
    query = select(Exchange).where(Exchange.session_id == session_id)
    query = query.order_by(col(Exchange.started_at), col(Exchange.id))
    query = query.options(*(defer(getattr(Exchange, c)) for c in _HEAVY))
    rows = list(db.exec(query).all())
    summary = db.get(SessionRow, session_id)
    if not rows and summary is None:
        return None
    paths = read.message_paths(db, select(Exchange.messages_tail).where(Exchange.session_id == session_id))
    wanted: set[str] = {h for p in paths.values() for h in p}
    skeletons = read.load_skeletons(db, {r.request_skeleton_hash for r in rows})
    for skeleton in skeletons.values():
        wanted.update(skeleton.system_refs or [])
        wanted.update(skeleton.tool_refs or [])
    for r in rows:
        if r.response_message_hash:
            wanted.add(r.response_message_hash)
    pieces = read.load_pieces(db, wanted)
    records = []
    for r in rows:
        messages = None
        if r.request_body_kind == "messages":
            messages = [pieces[h] for h in paths.get(r.messages_tail or "", []) if h in pieces]
        records.append(ExchangeRecord(
            id=r.id or 0, started_at=r.started_at, messages=messages,
            answer=pieces.get(r.response_message_hash or ""), agent_id=r.agent_id, is_subagent=r.is_subagent,
            has_tools=bool(skeletons.get(r.request_skeleton_hash or "", NO_SKELETON).tool_refs),
            failed=is_failed(r),
        ))
    shadows = read.alternates_of(db, (r.id or 0 for r in rows if r.is_subagent), SHADOW, bodies=False)
    return SessionData(summary, {r.id or 0: r for r in rows}, build_threads(records), pieces, skeletons,
                       {r.id or 0: costs.exchange_cost(r) for r in rows},
                       {i: [alternate_column(a) for a in found] for i, found in shadows.items()},
                       failure_texts(db, [r for r in rows if is_failed(r)]), session_id, records)


def failure_texts(db: Session, failed: list[Exchange]) -> dict[int, str]:
    """What went wrong, per failed exchange: read apart because error texts and bodies are deferred."""
    out = {}
    for row in failed:
        body = read.load_raw(db, row.response_raw_hash) if (row.status_code or 0) >= 400 or row.is_sse else None
        out[row.id or 0] = failures.describe(row.status_code, row.error_kind, row.error_message,
                                             failures.upstream_message(body))
    return out
