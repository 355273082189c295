"""One exchange in full: the rebuilt request and the response, headers, SSE events, timing, and what the
request added to its thread compared with the thread's previous request."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from ccbridge.storage import read
from ccbridge.storage.models import Exchange

from .. import costs, render
from ..answers import answer_columns
from ..deps import SessionDep, TemplatesDep
from ..loader import load_session

router = APIRouter(include_in_schema=False)
MAX_SHOWN = 2_000_000  # characters of a body shown on the page; the API has it all


def get_exchange(db: Session, exchange_id: int) -> Exchange:
    row = db.get(Exchange, exchange_id)
    if row is None:
        raise HTTPException(404, f"No request #{exchange_id} is recorded.")
    return row


def request_document(db: Session, row: Exchange) -> Any:
    body = read.rebuild_request_body(db, row)
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body


def previous_in_thread(db: Session, row: Exchange) -> tuple[str | None, int | None]:
    if not row.session_id or row.request_body_kind != "messages":
        return None, None
    data = load_session(db, row.session_id)
    if data is None or row.id not in data.threads.thread_of:
        return None, None
    thread = data.threads.thread(data.threads.thread_of[row.id or 0])
    ids = [t.record.id for t in thread.turns] if thread else []
    at = ids.index(row.id) if row.id in ids else 0
    return data.threads.thread_of[row.id or 0], ids[at - 1] if at > 0 else None


def added_diff(db: Session, previous: Exchange, current: Any) -> list[tuple[str, str]]:
    """Diff of the previous request (with its answer appended) against this one: what this turn added."""
    before = request_document(db, previous)
    if not isinstance(before, dict) or not isinstance(current, dict):
        return []
    before = copy.deepcopy(before)
    answer = read.rebuild_answer(db, previous)
    if answer and isinstance(before.get("messages"), list):
        before["messages"].append({"role": "assistant", "content": answer.get("content")})
    return render.unified_diff(render.pretty_json(before), render.pretty_json(current),
                               f"request #{previous.id} + answer", "this request")


def _timing(row: Exchange) -> list[tuple[str, str]]:
    out = []
    for label, stamp in (("request sent", row.request_done_at), ("first byte", row.first_byte_at),
                         ("finished", row.finished_at)):
        if stamp is not None:
            out.append((label, f"+{(stamp - row.started_at).total_seconds() * 1000:.0f} ms"))
    if row.sse_event_times:
        out.append(("SSE events", f"{len(row.sse_event_times)} over {row.sse_event_times[-1]:.0f} ms"))
    if row.response_truncated:
        out.append(("stored body", "only its start: longer than capture.max_body_mb (the client got all of it)"))
    return out


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else render.pretty_json(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "\n… (cut; see /api/requests)"


@router.get("/requests/{exchange_id}", response_class=HTMLResponse)
def request_view(exchange_id: int, request: Request, db: SessionDep, templates: TemplatesDep) -> HTMLResponse:
    row = get_exchange(db, exchange_id)
    body = request_document(db, row)
    thread_id, previous_id = previous_in_thread(db, row)
    diff = added_diff(db, get_exchange(db, previous_id), body) if previous_id else []
    response = read.rebuild_answer(db, row)
    raw_response = None
    if response is None and row.response_raw_hash and not row.is_sse:
        raw_response = (read.load_raw(db, row.response_raw_hash) or b"")[:MAX_SHOWN].decode("utf-8", errors="replace")
    return templates.TemplateResponse(request, "request.html", {
        "e": row, "request_headers": read.request_headers(db, row), "request_body": _shown(body),
        "response_body": _shown(response),
        "events": read.response_events(db, row), "raw_response": raw_response, "timing": _timing(row), "diff": diff,
        "thread_id": thread_id, "previous_id": previous_id, "tokens": costs.tokens_of(row),
        "cost": costs.exchange_cost(row),
        "columns": answer_columns(row, response, read.alternate_answers(db, exchange_id)),
    })
