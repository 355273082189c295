"""What a capture database holds, read back for assertions."""

from __future__ import annotations

from sqlmodel import Session, select

from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange


def flow_ids(url: str) -> list[str]:
    """The flow id of every exchange row, in the order they were inserted."""
    engine = open_engine(url)
    try:
        with Session(engine) as db:
            return list(db.exec(select(Exchange.flow_id).order_by(Exchange.id)).all())
    finally:
        engine.dispose()
