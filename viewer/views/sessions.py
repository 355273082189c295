"""The sessions page: newest first, keyset pages, filters, search, the latest limits; and the usage page
(tokens and cost, and the savings report)."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .. import queries, savings
from ..deps import PricesDep, SessionDep, TemplatesDep

router = APIRouter(include_in_schema=False)


def parse_day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def filters_from(request: Request) -> queries.SessionFilter:
    p = request.query_params
    return queries.SessionFilter(
        model=p.get("model") or None, agent=p.get("agent") or None, since=parse_day(p.get("since")),
        until=parse_day(p.get("until")), errors=bool(p.get("errors")), routed=bool(p.get("routed")),
    )


@router.get("/", response_class=HTMLResponse)
def sessions_page(request: Request, db: SessionDep, templates: TemplatesDep) -> HTMLResponse:
    filters = filters_from(request)
    q = (request.query_params.get("q") or "").strip()
    page = queries.list_sessions(db, filters, request.query_params.get("cursor"))
    next_query = urlencode({**filters.as_params(), "cursor": page.next_cursor or ""})
    return templates.TemplateResponse(request, "sessions.html", {
        "page": page, "filters": filters, "models": queries.models_in_use(db), "next_query": next_query,
        "windows": queries.latest_limits(db), "q": q, "hits": queries.search(db, q) if q else [],
    })


@router.get("/usage", response_class=HTMLResponse)
def usage_page(request: Request, db: SessionDep, templates: TemplatesDep, prices: PricesDep) -> HTMLResponse:
    since, until = parse_day(request.query_params.get("since")), parse_day(request.query_params.get("until"))
    return templates.TemplateResponse(request, "usage.html", {
        "rows": queries.usage(db, since, until), "since": since, "until": until,
        "savings": savings.report(db, prices, since, until),
    })
