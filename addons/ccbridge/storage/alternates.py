"""Other models' answers to recorded requests as `AlternateAnswer` rows: replays and shadow copies.

A replay is written by the command that asked for it (`store_alternate`). A shadow copy is asked for inside
the proxy, so it goes through the journal like every record (`shadow_rows`, for the writer): linked by the
original's flow id, because either may be stored first. Nothing about the original exchange changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..captured import CapturedExchange
from .holdable import fit_json, fit_text
from .models import AlternateAnswer
from .record import Rows, body_to_store, redacted_json, when

SHADOW = "shadow"
# what a shadow record's route carries besides the link, copied to the columns of the same name
_SHADOW_FACTS = ("provider", "model", "api", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd",
                 "ttfb_ms", "duration_ms")


def alternate_row(exchange_id: int, kind: str, columns: dict[str, Any],
                  created_at: datetime | None = None) -> AlternateAnswer:
    """The row of an answer `alternate.ask` returned (`columns`), linked to the exchange it answers."""
    return AlternateAnswer(exchange_id=exchange_id, kind=kind, created_at=created_at or datetime.now(UTC), **columns)


def store_alternate(engine: Engine, row: AlternateAnswer) -> int:
    """Insert `row` (its text fitted to what databases hold; `raw_response` keeps the bytes as sent); its id."""
    row.request = fit_json(row.request)[0]
    row.answer = fit_json(row.answer)[0]
    if row.error is not None:
        row.error = fit_text(row.error)[0]
    with Session(engine, expire_on_commit=False) as db:
        db.add(row)
        db.commit()
        assert row.id is not None
        return row.id


def shadow_rows(captured: CapturedExchange, salt: bytes, problem: str | None = None) -> Rows:
    """The AlternateAnswer of a shadow record (`captured.shadow_of()` is set); with `problem`, only its facts."""
    route = captured.route or {}
    alternate: dict[str, Any] = {name: route.get(name) for name in _SHADOW_FACTS}
    alternate.update(
        exchange_id=None, flow_id=captured.shadow_of(), kind=SHADOW,
        provider=str(route.get("provider") or "")[:128], model=str(route.get("model") or "")[:255],
        created_at=when(captured.finished_at or captured.started_at), request=None, answer=None, raw_response=None,
        error=route.get("error"),
    )
    if problem is None:
        answer = route.get("answer")
        if captured.provider_request is not None:
            alternate["request"] = fit_json(redacted_json(captured, captured.provider_request, salt))[0]
        if isinstance(answer, dict):
            alternate["answer"] = fit_json(redacted_json(captured, answer, salt))[0]
        if captured.provider_response:
            alternate["raw_response"] = body_to_store(captured, captured.provider_response, salt)
    else:
        alternate["error"] = "; ".join(e for e in (alternate["error"], problem) if e)
    if alternate["error"] is not None:
        alternate["error"] = fit_text(str(alternate["error"]))[0]
    return Rows({"flow_id": captured.flow_id}, alternate=alternate)
