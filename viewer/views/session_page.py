"""A session as threads: the page, its live-updating transcript fragment, and the JSON and Markdown exports."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func
from sqlmodel import Session, col, select

from ccbridge.storage.models import AlternateAnswer, Exchange

from .. import export, queries, serialize
from ..deps import SessionDep, TemplatesDep
from ..loader import SessionData, load_session
from ..transcript import build_transcript

router = APIRouter(include_in_schema=False)


def known_state(db: Session, session_id: str) -> str:
    """Changes whenever an exchange of the session, or a shadow answer to one, is written."""
    count, last = db.exec(select(func.count(), func.max(Exchange.id)).where(Exchange.session_id == session_id)).one()
    shadows = db.exec(select(func.count()).select_from(AlternateAnswer)
                      .join(Exchange, col(AlternateAnswer.exchange_id) == col(Exchange.id))
                      .where(Exchange.session_id == session_id)).one()
    return f"{count}-{last or 0}-{shadows}"


def load_or_404(db: Session, session_id: str) -> SessionData:
    data = load_session(db, session_id)
    if data is None:
        raise HTTPException(404, f"No session {session_id!r} is recorded.")
    return data


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_view(session_id: str, request: Request, db: SessionDep, templates: TemplatesDep) -> HTMLResponse:
    known = known_state(db, session_id)
    data = load_or_404(db, session_id)
    return templates.TemplateResponse(request, "session.html", {
        "session_id": session_id, "summary": data.session, "cost": data.total_cost, "tr": build_transcript(data),
        "windows": queries.latest_limits(db, session_id), "known": known, "q": request.query_params.get("q", ""),
    })


@router.get("/sessions/{session_id}/transcript", response_class=HTMLResponse)
def transcript_fragment(session_id: str, request: Request, db: SessionDep, templates: TemplatesDep,
                        known: str = "") -> Response:
    """The transcript again when something was recorded since `known`; 204 (htmx keeps the page) otherwise."""
    current = known_state(db, session_id)
    if current == known:
        return Response(status_code=204)
    data = load_or_404(db, session_id)
    template = templates.env.get_template("_transcript.html")
    # a template's macros are attributes jinja2 creates at run time
    html = template.module.transcript(build_transcript(data), session_id, current)  # type: ignore[attr-defined]
    return HTMLResponse(str(html))


def session_document(db: Session, session_id: str) -> dict[str, Any]:
    data = load_or_404(db, session_id)
    return serialize.session(data.session, data.total_cost, build_transcript(data),
                             queries.latest_limits(db, session_id), data.costs)


@router.get("/sessions/{session_id}/export.json")
def export_json(session_id: str, db: SessionDep) -> Response:
    body = json.dumps(session_document(db, session_id), ensure_ascii=False, indent=1, default=str)
    return Response(body, media_type="application/json",
                    headers={"content-disposition": 'attachment; filename="session.json"'})


@router.get("/sessions/{session_id}/export.md")
def export_markdown(session_id: str, db: SessionDep) -> Response:
    data = load_or_404(db, session_id)
    summary = serialize.session_summary(data.session, data.total_cost) if data.session else None
    body = export.session_markdown(session_id, summary, build_transcript(data))
    return Response(body, media_type="text/markdown; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="session.md"'})
