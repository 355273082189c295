"""Load one session from storage into threads: few queries, each piece parsed once and shared.

The message lists of all requests are read together: one recursive query walks the prefix tree up from
every request's last message (shared prefixes are walked once), then each distinct piece is parsed once,
so a 200-turn session costs a few thousand small rows, not 200 full conversations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from ccbridge.storage.models import Blob, Exchange
from ccbridge.storage.models import Session as SessionRow

from . import costs
from .threads import ExchangeRecord, SessionThreads, build_threads

# Columns the transcript does not show: large, and read only by the request page.
_HEAVY = ("sse_event_times", "request_headers", "response_headers", "provider_request", "request_skeleton",
          "cache_marks", "user_agent", "error_message")

_NODES = text(
    "WITH RECURSIVE chain(id, parent_id, message_hash) AS ("
    " SELECT n.id, n.parent_id, n.message_hash FROM messagenode n"
    " WHERE n.id IN (SELECT e.messages_tail FROM exchange e WHERE e.session_id = :sid)"
    " UNION SELECT m.id, m.parent_id, m.message_hash FROM messagenode m JOIN chain c ON m.id = c.parent_id)"
    " SELECT id, parent_id, message_hash FROM chain"
)
_CHUNK = 500


@dataclass
class SessionData:
    session: SessionRow | None
    exchanges: dict[int, Exchange]
    threads: SessionThreads
    pieces: dict[str, Any]  # blob hash -> parsed JSON
    costs: dict[int, Decimal | None]

    @property
    def total_cost(self) -> costs.Total:
        return costs.total(self.costs.values())

    def system_of(self, exchange_id: int) -> list[Any]:
        return [self.pieces[h] for h in self.exchanges[exchange_id].system_refs or [] if h in self.pieces]

    def tools_of(self, exchange_id: int) -> list[Any]:
        return [self.pieces[h] for h in self.exchanges[exchange_id].tool_refs or [] if h in self.pieces]


def load_pieces(db: Session, hashes: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    wanted = sorted(hashes)
    for i in range(0, len(wanted), _CHUNK):
        part = wanted[i : i + _CHUNK]
        rows = db.exec(select(Blob.hash, Blob.json_text).where(Blob.hash.in_(part))).all()  # type: ignore[attr-defined]
        out.update((h, json.loads(t)) for h, t in rows)
    return out


def _paths(nodes: dict[str, tuple[str | None, str]], tails: set[str]) -> dict[str, list[str]]:
    """Message hashes from the root to each tail; memoized along the way (requests share prefixes)."""
    memo: dict[str, list[str]] = {}
    for tail in sorted(tails):
        stack, current = [], tail
        while current is not None and current not in memo and current in nodes:
            stack.append(current)
            current = nodes[current][0]
        base = memo.get(current, []) if current is not None else []
        for node in reversed(stack):
            base = [*base, nodes[node][1]]
            memo[node] = base
    return {t: memo[t] for t in tails if t in memo}


def load_session(db: Session, session_id: str) -> SessionData | None:
    query = select(Exchange).where(Exchange.session_id == session_id).order_by(Exchange.started_at, Exchange.id)
    query = query.options(*(defer(getattr(Exchange, c)) for c in _HEAVY))
    rows = list(db.exec(query).all())
    summary = db.get(SessionRow, session_id)
    if not rows and summary is None:
        return None
    conn = db.connection()
    nodes = {r[0]: (r[1], r[2]) for r in conn.execute(_NODES, {"sid": session_id})}
    tails = {r.messages_tail for r in rows if r.messages_tail}
    paths = _paths(nodes, tails)
    wanted: set[str] = {h for p in paths.values() for h in p}
    for r in rows:
        wanted.update(r.system_refs or [])
        wanted.update(r.tool_refs or [])
        if r.response_message_hash:
            wanted.add(r.response_message_hash)
    pieces = load_pieces(db, wanted)
    records = []
    for r in rows:
        messages = None
        if r.request_body_kind == "messages":
            messages = [pieces[h] for h in paths.get(r.messages_tail or "", []) if h in pieces]
        records.append(ExchangeRecord(
            id=r.id or 0, started_at=r.started_at, messages=messages,
            answer=pieces.get(r.response_message_hash or ""), agent_id=r.agent_id, is_subagent=r.is_subagent,
            has_tools=bool(r.tool_refs),
        ))
    return SessionData(summary, {r.id or 0: r for r in rows}, build_threads(records), pieces,
                       {r.id or 0: costs.exchange_cost(r) for r in rows})
