"""The JSON API (documented at /docs): sessions, a session's nested threads, one request, usage, savings, health."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import text

from ccbridge.storage import read

from .. import costs, queries, savings, serialize
from ..answers import answer_columns
from ..deps import PricesDep, SessionDep
from .request_page import get_exchange, previous_in_thread, request_document
from .session_page import session_document

router = APIRouter()


@router.get("/health", tags=["health"])
def health(db: SessionDep) -> dict[str, str]:
    """Liveness and database reachability; the one route that never asks for credentials."""
    db.connection().execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/api/sessions", tags=["sessions"])
def api_sessions(
    db: SessionDep,
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(queries.PAGE_SIZE, ge=1, le=500),
    model: str | None = None,
    agent: str | None = Query(None, description="an agent id, or the name of a routed agent"),
    since: date | None = None,
    until: date | None = None,
    errors: bool = False,
    routed: bool = False,
) -> dict[str, Any]:
    """Sessions, newest activity first, a keyset page at a time."""
    filters = queries.SessionFilter(model, agent, since, until, errors, routed)
    page = queries.list_sessions(db, filters, cursor, limit)
    return {"sessions": [serialize.session_summary(s, page.costs[s.id]) for s in page.sessions],
            "next_cursor": page.next_cursor, "limits": serialize.limits(queries.latest_limits(db))}


@router.get("/api/search", tags=["sessions"])
def api_search(db: SessionDep, q: str = Query(..., min_length=1)) -> dict[str, Any]:
    """Sessions whose conversation contains `q`, each with the first exchange that sent or answered it."""
    return {"hits": [{"session_id": h.session_id, "exchange_id": h.exchange_id, "started_at": h.started_at.isoformat(),
                      "where": h.where, "snippet": h.snippet} for h in queries.search(db, q)]}


@router.get("/api/sessions/{session_id}", tags=["sessions"])
def api_session(session_id: str, db: SessionDep) -> dict[str, Any]:
    """A session as threads; subagent runs nested under the tool call that spawned them."""
    return session_document(db, session_id)


@router.get("/api/requests/{exchange_id}", tags=["requests"])
def api_request(exchange_id: int, db: SessionDep) -> dict[str, Any]:
    """One exchange: the rebuilt request, the reassembled answer, headers, SSE events, timing, and the answers
    side by side: the original first, then other models' (`ccbridge replay`, shadow copies)."""
    row = get_exchange(db, exchange_id)
    thread_id, previous_id = previous_in_thread(db, row)
    response = read.rebuild_answer(db, row)
    columns = answer_columns(row, response, read.alternate_answers(db, exchange_id))
    return {
        **serialize.exchange_summary(row, costs.exchange_cost(row)),
        "session_id": row.session_id, "thread_id": thread_id, "previous_in_thread": previous_id,
        "request_headers": read.request_headers(db, row), "response_headers": row.response_headers,
        "request": request_document(db, row), "response": response,
        "sse_events": [{"event": e.event, "data": e.data, "ms": e.at} for e in read.response_events(db, row)],
        "ratelimit": row.ratelimit, "error_message": row.error_message,
        "answers": [serialize.answer(c) for c in columns],
    }


@router.get("/api/usage", tags=["usage"])
def api_usage(db: SessionDep, since: date | None = None, until: date | None = None) -> dict[str, Any]:
    """Tokens and cost by day, provider, model and agent (`main`, `subagent`, or a routed agent's name)."""
    rows = queries.usage(db, since, until)
    # a usage group of a model genai-prices does not know counts all its requests as unpriced
    everything = costs.total(r.cost if r.cost is not None else costs.Total(Decimal(0), r.requests) for r in rows)
    return {"rows": [{"day": r.day, "provider": r.provider, "model": r.model, "agent": r.agent,
                      "requests": r.requests, "tokens": serialize.tokens(r.tokens), "cost_usd": serialize.money(r.cost)}
                     for r in rows],
            "total_cost_usd": serialize.money(everything), **serialize.priced(everything)}


@router.get("/api/savings", tags=["usage"])
def api_savings(db: SessionDep, prices: PricesDep, since: date | None = None,
                until: date | None = None) -> dict[str, Any]:
    """Routed requests: provider cost against the Claude model's (an estimate, see `method`); shadow pairs: both
    real costs. Per day and agent, with totals; a request without a price is counted in `unpriced_requests`."""
    return serialize.savings(savings.report(db, prices, since, until))
