"""Writing other models' answers to recorded requests (`AlternateAnswer`: replays, shadow copies).

They are written by the command or task that asked for them, not by the journal's writer process: each is one
row, stored once, and nothing about the original exchange changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from .holdable import fit_json, fit_text
from .models import AlternateAnswer


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
