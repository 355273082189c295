"""A session as threads: the page, its timeline, its live-updating transcript, a long tool result on demand, and
the JSON and Markdown exports.

Session ids may contain `/`, so every view sits under one route, `/sessions/{rest:path}`, that reads the raw
(still percent-encoded) path: the pages link ids encoded (`a%2Fb`), which makes `<id>/<view>` unambiguous; a
typed id with a literal `/` still works, its last segment read as a view only when it names one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func
from sqlmodel import Session, col, select

from ccbridge.storage.models import AlternateAnswer, Exchange

from .. import export, live, queries, serialize
from ..deps import SessionDep, TemplatesDep
from ..loader import SessionData, load_session
from ..messages import blocks
from ..timeline import build_timeline
from ..transcript import build_transcript

router = APIRouter(include_in_schema=False)
View = Callable[[Request, Session, Jinja2Templates, str, str], Response]


def known_state(db: Session, session_id: str) -> str:
    """`<exchanges>-<newest exchange id>-<newest shadow answer id>`: changes whenever either is written."""
    count, last = db.exec(select(func.count(), func.max(Exchange.id)).where(Exchange.session_id == session_id)).one()
    shadow = db.exec(select(func.max(AlternateAnswer.id))
                     .join(Exchange, col(AlternateAnswer.exchange_id) == col(Exchange.id))
                     .where(Exchange.session_id == session_id)).one()
    return f"{count}-{last or 0}-{shadow or 0}"


def parse_state(known: str) -> tuple[int, int, int] | None:
    parts = known.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def load_or_404(db: Session, session_id: str) -> SessionData:
    data = load_session(db, session_id)
    if data is None:
        raise HTTPException(404, f"No session {session_id!r} is recorded.")
    return data


def page(request: Request, db: Session, templates: Jinja2Templates, session_id: str, _: str) -> Response:
    known = known_state(db, session_id)
    data = load_or_404(db, session_id)
    return templates.TemplateResponse(request, "session.html", {
        "session_id": session_id, "summary": data.session, "cost": data.total_cost, "tr": build_transcript(data),
        "windows": queries.latest_limits(db, session_id), "known": known, "q": request.query_params.get("q", ""),
    })


def timeline(request: Request, db: Session, templates: Jinja2Templates, session_id: str, _: str) -> Response:
    data = load_or_404(db, session_id)
    href = f"/sessions/{quote(session_id, safe='')}"
    return templates.TemplateResponse(request, "timeline.html", {
        "session_id": session_id, "tl": build_timeline(data, href), "q": ""})


def changed_since(db: Session, session_id: str, last_id: int, last_shadow: int) -> set[int]:
    """Exchanges written after `last_id`, and those given a shadow answer after `last_shadow`."""
    new = db.exec(select(Exchange.id).where(Exchange.session_id == session_id, col(Exchange.id) > last_id)).all()
    shadowed = db.exec(select(AlternateAnswer.exchange_id)
                       .join(Exchange, col(AlternateAnswer.exchange_id) == col(Exchange.id))
                       .where(Exchange.session_id == session_id, col(AlternateAnswer.id) > last_shadow)).all()
    return {i for i in [*new, *shadowed] if i is not None}


def transcript_fragment(request: Request, db: Session, templates: Jinja2Templates, session_id: str,
                        _: str) -> Response:
    """What was recorded since `known`, as out-of-band swaps (only the new or changed turns, or the whole
    transcript when the threads changed shape); 204 (htmx keeps the page) when nothing was."""
    known = request.query_params.get("known", "")
    current = known_state(db, session_id)
    if current == known:
        return Response(status_code=204)
    data = load_or_404(db, session_id)
    now = build_transcript(data)
    state = parse_state(known)
    update = live.Update(full=True)
    if state is not None:
        count, last_id, last_shadow = state
        changed = changed_since(db, session_id, last_id, last_shadow)
        if count == sum(1 for i in data.exchanges if i <= last_id):  # nothing the page shows has gone
            update = live.plan(build_transcript(data.as_of(last_id)), now, changed)
    template = templates.env.get_template("_live.html")
    # a template's macros are attributes jinja2 creates at run time
    html = template.module.update(update, now, session_id, current)  # type: ignore[attr-defined]
    return HTMLResponse(str(html))


def tool_result(request: Request, db: Session, templates: Jinja2Templates, session_id: str,
                tool_use_id: str) -> Response:
    """The whole of a tool result the page shows clipped, to replace the clipped one."""
    data = load_or_404(db, session_id)
    found = next((b for piece in data.pieces.values() for b in blocks(piece if isinstance(piece, dict) else None)
                  if b.get("type") == "tool_result" and b.get("tool_use_id") == tool_use_id), None)
    if found is None:
        raise HTTPException(404, f"No tool result for {tool_use_id!r} in this session.")
    template = templates.env.get_template("_blocks.html")
    body = template.module.tool_result(found)  # type: ignore[attr-defined]
    summary = "result (error)" if found.get("is_error") else "result"
    return HTMLResponse(f"<summary>{summary}</summary>{body}")


def session_document(db: Session, session_id: str) -> dict[str, Any]:
    data = load_or_404(db, session_id)
    return serialize.session(data.session, data.total_cost, build_transcript(data),
                             queries.latest_limits(db, session_id), data.costs)


def export_json(request: Request, db: Session, templates: Jinja2Templates, session_id: str, _: str) -> Response:
    body = json.dumps(session_document(db, session_id), ensure_ascii=False, indent=1, default=str)
    return Response(body, media_type="application/json",
                    headers={"content-disposition": 'attachment; filename="session.json"'})


def export_markdown(request: Request, db: Session, templates: Jinja2Templates, session_id: str,
                    _: str) -> Response:
    data = load_or_404(db, session_id)
    summary = serialize.session_summary(data.session, data.total_cost) if data.session else None
    body = export.session_markdown(session_id, summary, build_transcript(data))
    return Response(body, media_type="text/markdown; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="session.md"'})


# view name -> (path segments after the id, handler); a handler gets the segment after the name as its argument
VIEWS: dict[str, tuple[int, View]] = {
    "timeline": (1, timeline), "transcript": (1, transcript_fragment), "export.json": (1, export_json),
    "export.md": (1, export_markdown), "tool-result": (2, tool_result),
}


def split_target(raw: str) -> tuple[str, str, str]:
    """`<encoded id>[/<view>[/<argument>]]` (the raw path after /sessions/) as (session id, view, argument)."""
    segments = raw.split("/")
    for name, (length, _) in VIEWS.items():
        if len(segments) > length and segments[-length] == name:
            argument = unquote(segments[-1]) if length == 2 else ""
            return unquote("/".join(segments[:-length])), name, argument
    return unquote(raw), "", ""


@router.get("/sessions/{rest:path}", response_class=HTMLResponse, name="session_views")
def session_views(rest: str, request: Request, db: SessionDep, templates: TemplatesDep) -> Response:
    raw_path = request.scope.get("raw_path")
    raw = raw_path.decode("latin-1").split("?")[0] if raw_path else request.url.path
    after = raw.split("/sessions/", 1)[1] if "/sessions/" in raw else rest
    session_id, name, argument = split_target(after)
    if not session_id:
        raise HTTPException(404, "No session given.")
    handler = VIEWS[name][1] if name else page
    return handler(request, db, templates, session_id, argument)
