"""Read queries over storage: the session list (keyset pages and filters), search, limits and usage.

Portable SQL only (SQLite and PostgreSQL): no JSON operators, no dialect-specific full-text index. Search is
a case-insensitive LIKE over the stored message pieces, which is fast enough for a personal capture store.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy
from sqlalchemy import Text, and_, cast, exists, or_
from sqlmodel import Session, col, select

from ccbridge.prices import cost_usd
from ccbridge.storage import read
from ccbridge.storage.models import Blob, Exchange
from ccbridge.storage.models import Session as SessionRow

from . import costs
from .limits import Window, windows
from .messages import message_text

PAGE_SIZE = 50
SEARCH_LIMIT = 50
_DESCEND = 4  # a matching message can sit a few places before its request's last message (system notes)


@dataclass(frozen=True)
class SessionFilter:
    model: str | None = None
    agent: str | None = None  # an agent id, or a routed agent's name
    since: date | None = None
    until: date | None = None
    errors: bool = False
    routed: bool = False

    def as_params(self) -> dict[str, str]:
        out = {"model": self.model or "", "agent": self.agent or "",
               "since": self.since.isoformat() if self.since else "",
               "until": self.until.isoformat() if self.until else "",
               "errors": "1" if self.errors else "", "routed": "1" if self.routed else ""}
        return {k: v for k, v in out.items() if v}


@dataclass
class SessionPage:
    sessions: list[SessionRow]
    next_cursor: str | None
    costs: dict[str, costs.Total] = field(default_factory=dict)


def encode_cursor(row: SessionRow) -> str:
    raw = json.dumps([row.last_activity_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        stamp, sid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(stamp)
    except (ValueError, TypeError):
        return None
    # the columns hold UTC and take aware datetimes
    return (when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)), str(sid)


def list_sessions(db: Session, filters: SessionFilter = SessionFilter(), cursor: str | None = None,
                  limit: int = PAGE_SIZE) -> SessionPage:
    """Newest activity first; `cursor` is the opaque position after the previous page's last row."""
    s = SessionRow
    query = select(s)
    if filters.errors:
        query = query.where(s.error_count > 0)
    if filters.routed:
        query = query.where(s.routed_count > 0)
    if filters.since:
        query = query.where(s.last_activity_at >= datetime.combine(filters.since, time.min, tzinfo=UTC))
    if filters.until:
        query = query.where(s.started_at < datetime.combine(filters.until + timedelta(days=1), time.min, tzinfo=UTC))
    if filters.model:
        query = query.where(exists().where(col(Exchange.session_id) == s.id, col(Exchange.model) == filters.model))
    if filters.agent:
        agent = filters.agent
        like = f'%"agent": "{agent}"%'
        query = query.where(exists().where(col(Exchange.session_id) == s.id, or_(
            col(Exchange.agent_id) == agent,
            and_(col(Exchange.routed).is_(True), cast(col(Exchange.route), Text).like(like)),
        )))
    position = decode_cursor(cursor)
    if position is not None:
        when, last_id = position
        query = query.where(or_(col(s.last_activity_at) < when,
                                and_(col(s.last_activity_at) == when, col(s.id) < last_id)))
    query = query.order_by(col(s.last_activity_at).desc(), col(s.id).desc()).limit(limit + 1)
    rows = list(db.exec(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    page = SessionPage(rows, encode_cursor(rows[-1]) if more and rows else None)
    page.costs = session_costs(db, [r.id for r in rows])
    return page


# sqlmodel's select() types at most four columns: these wider rows are read with SQLAlchemy's select()
# on the session's connection (same transaction).
_COST_COLUMNS = (col(Exchange.session_id), col(Exchange.model), col(Exchange.route), col(Exchange.started_at),
                 col(Exchange.input_tokens), col(Exchange.output_tokens), col(Exchange.cache_read_input_tokens),
                 col(Exchange.cache_creation_input_tokens), col(Exchange.response_message))


def session_costs(db: Session, session_ids: list[str]) -> dict[str, costs.Total]:
    """Cost per session: priced per exchange (long-context tiers apply per request, not per sum)."""
    parts: dict[str, list[Decimal | None]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return {}
    query = sqlalchemy.select(*_COST_COLUMNS).where(col(Exchange.session_id).in_(session_ids))
    rows = db.connection().execute(query).all()
    for row in rows:
        parts[row.session_id].append(costs.exchange_cost(row))
    return {sid: costs.total(values) for sid, values in parts.items()}


def latest_limits(db: Session, session_id: str | None = None) -> list[Window]:
    """The windows reported by the newest response that had any (in one session, or anywhere)."""
    query = select(Exchange.ratelimit, Exchange.started_at).where(col(Exchange.ratelimit).is_not(None))
    if session_id is not None:
        query = query.where(Exchange.session_id == session_id)
    row = db.exec(query.order_by(col(Exchange.started_at).desc(), col(Exchange.id).desc()).limit(1)).first()
    return windows(row[0], row[1]) if row else []


@dataclass(frozen=True)
class SearchHit:
    session_id: str
    exchange_id: int
    started_at: datetime
    snippet: str
    where: str  # request | answer


def _like_pattern(term: str) -> str:
    # the term as it appears inside JSON text, with LIKE's wildcards escaped
    encoded = json.dumps(term, ensure_ascii=False)[1:-1]
    return "%" + encoded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _snippet(json_text: str, term: str, width: int = 80) -> str:
    try:
        text = message_text(json.loads(json_text)) or json_text
    except ValueError:
        text = json_text
    at = text.lower().find(term.lower())
    if at < 0:
        return text[: width * 2]
    start = max(0, at - width)
    return ("…" if start else "") + text[start : at + len(term) + width] + ("…" if at + len(term) + width < len(text)
                                                                              else "")


def search(db: Session, term: str, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
    """Sessions whose conversation text contains `term`, with the first exchange that sent or answered it."""
    term = term.strip()
    if not term:
        return []
    pattern = _like_pattern(term)
    blobs = db.exec(
        select(Blob.hash, Blob.json_text)
        .where(col(Blob.kind) == "message", col(Blob.json_text).ilike(pattern, escape="\\"))
        .limit(limit * 4)
    ).all()
    if not blobs:
        return []
    texts = dict(blobs)
    found: dict[str, SearchHit] = {}
    answered = db.exec(select(Exchange.id, Exchange.session_id, Exchange.started_at, Exchange.response_message_hash)
                       .where(col(Exchange.response_message_hash).in_(texts))).all()
    _keep(found, answered, texts, term, "answer")
    # messages sent: the requests whose last message is the match or a few places after it
    _keep(found, read.exchanges_sending(db, texts, _DESCEND), texts, term, "request")
    hits = sorted(found.values(), key=lambda h: h.started_at, reverse=True)
    return hits[:limit]


def _keep(found: dict[str, SearchHit], rows: Iterable[Any], texts: dict[str, str], term: str, where: str) -> None:
    for exchange_id, session_id, started_at, digest in rows:
        if session_id is None:
            continue
        current = found.get(session_id)
        if current is None or started_at < current.started_at:
            found[session_id] = SearchHit(session_id, exchange_id, started_at, _snippet(texts[digest], term), where)


@dataclass
class UsageRow:
    day: str
    provider: str
    model: str | None
    agent: str
    requests: int = 0
    tokens: costs.Tokens = field(default_factory=costs.Tokens)
    cost: Decimal | None = Decimal(0)


def usage(db: Session, since: date | None = None, until: date | None = None) -> list[UsageRow]:
    """Tokens and cost grouped by day, provider, model and agent (main, subagent, or a routed agent's name)."""
    query = sqlalchemy.select(col(Exchange.started_at), col(Exchange.model), col(Exchange.route),
                              col(Exchange.is_subagent), col(Exchange.input_tokens), col(Exchange.output_tokens),
                              col(Exchange.cache_read_input_tokens), col(Exchange.cache_creation_input_tokens),
                              col(Exchange.response_message))
    query = started_between(query, since, until)
    groups: dict[tuple[str, str, str | None, str], UsageRow] = defaultdict(lambda: UsageRow("", "", None, ""))
    for row in db.connection().execute(query).all():
        provider, model = costs.provider_and_model(row.model, row.route)
        agent = (row.route or {}).get("agent") or ("subagent" if row.is_subagent else "main")
        key = (row.started_at.date().isoformat(), provider, model, str(agent))
        group = groups[key]
        if not group.day:
            group.day, group.provider, group.model, group.agent = key
        group.requests += 1
        tokens = costs.tokens_of(row)
        group.tokens = group.tokens + tokens
        price = cost_usd(provider, model, tokens, at=row.started_at)
        group.cost = None if group.cost is None or price is None else group.cost + price
    return sorted(groups.values(), key=lambda g: (g.day, g.provider, g.model or "", g.agent))


def started_between(query: Any, since: date | None, until: date | None) -> Any:
    """`query` narrowed to exchanges started from `since` to `until` (whole UTC days, both included)."""
    started = col(Exchange.started_at)
    if since:
        query = query.where(started >= datetime.combine(since, time.min, tzinfo=UTC))
    if until:
        query = query.where(started < datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC))
    return query


def models_in_use(db: Session) -> list[str]:
    rows = db.exec(select(Exchange.model).where(col(Exchange.model).is_not(None)).distinct()).all()
    return sorted(r for r in rows if r)
