"""Upkeep of a capture database: session summaries, pruning old captures, and deleting everything.

The writer keeps the summaries current as it stores exchanges; `ccbridge prune` and `ccbridge db-reset`
call the rest. Pruning deletes exchanges first, then whatever only they used (message nodes, blobs, raw
bodies), so what remains still rebuilds exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, delete, func, inspect, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel, col

from .db import open_engine, sqlite_path
from .inserts import insert_ignoring_duplicates
from .models import AlternateAnswer, Blob, Exchange, MessageNode, RawBody, Session, table_of
from .pieces import Skeleton
from .read import ancestry

BATCH = 500  # ids per DELETE ... IN (...)


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


COUNTS = ("request_count", "subagent_request_count", "subagent_runs", "input_tokens", "output_tokens",
          "cache_creation_input_tokens", "cache_read_input_tokens", "error_count", "routed_count")


def update_sessions(conn: Connection, touched: dict[str, dict[str, str]]) -> None:
    """Recompute the summary of each touched session from its exchanges (correct with several writers).

    `touched` maps a session id to hints the exchanges do not hold: `client_version`, `project_dir`.
    Each summary row is made to exist and then locked before its exchanges are counted: a writer that
    updates the same session at the same time waits until this one commits, then counts what it added
    (on PostgreSQL each statement sees what was committed before it; SQLite has one writer at a time).
    """
    if not touched:
        return
    ids = sorted(touched)  # locks taken in one order by every writer
    placeholder = datetime.now(UTC)
    insert_ignoring_duplicates(conn, table_of(Session), [
        {"id": sid, "started_at": placeholder, "last_activity_at": placeholder, "models": [],
         "project_dir": touched[sid].get("project_dir"), **dict.fromkeys(COUNTS, 0)} for sid in ids])
    known = (select(col(Session.id), col(Session.project_dir)).where(col(Session.id).in_(ids))
             .order_by(col(Session.id)).with_for_update())
    existing = {row.id: row for row in conn.execute(known)}
    e = inspect(Exchange).local_table.c
    errors = func.sum(
        func.coalesce(((e.error_kind.is_not(None)) | (e.status_code >= 400)).cast(Integer), 0)
    )
    stats = conn.execute(
        select(
            e.session_id,
            func.min(e.started_at),
            func.max(func.coalesce(e.finished_at, e.started_at)),
            func.count(),
            func.sum(e.is_subagent.cast(Integer)),
            func.count(e.agent_id.distinct()),
            func.coalesce(func.sum(e.input_tokens), 0),
            func.coalesce(func.sum(e.output_tokens), 0),
            func.coalesce(func.sum(e.cache_creation_input_tokens), 0),
            func.coalesce(func.sum(e.cache_read_input_tokens), 0),
            errors,
            func.sum(e.routed.cast(Integer)),
        )
        .where(e.session_id.in_(ids))
        .group_by(e.session_id)
    ).all()
    models: dict[str, list[str]] = {}
    for session_id, model in conn.execute(
        select(e.session_id, e.model).where(e.session_id.in_(ids), e.model.is_not(None)).distinct()
    ):
        models.setdefault(session_id, []).append(model)
    for (sid, first, last, count, sub, agents, inp, out, cwrite, cread, errs, routed) in stats:
        hint = touched.get(sid, {})
        values = {
            "started_at": first, "last_activity_at": last, "request_count": count,
            "subagent_request_count": sub or 0, "subagent_runs": agents or 0, "input_tokens": inp,
            "output_tokens": out, "cache_creation_input_tokens": cwrite, "cache_read_input_tokens": cread,
            "error_count": errs or 0, "routed_count": routed or 0, "models": sorted(models.get(sid, [])),
        }
        if hint.get("client_version"):
            values["client_version"] = hint["client_version"]
        if sid in existing and existing[sid].project_dir is None and hint.get("project_dir"):
            values["project_dir"] = hint["project_dir"]
        conn.execute(update(Session).where(col(Session.id) == sid).values(**values))


def prune(engine: Engine, days: float, now: datetime | None = None) -> dict[str, int]:
    """Delete exchanges that started more than `days` ago, then their other models' answers, orphaned pieces and
    emptied sessions; counts."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    counts = {"exchanges": 0, "sessions": 0, "blobs": 0, "nodes": 0, "raw": 0}
    session = col(Exchange.session_id)
    with engine.begin() as conn:
        old = select(session).where(col(Exchange.started_at) < cutoff).distinct()
        touched = [s for (s,) in conn.execute(old) if s is not None]
        counts["exchanges"] = conn.execute(delete(Exchange).where(col(Exchange.started_at) < cutoff)).rowcount or 0
        if not counts["exchanges"]:
            return counts
        kept = select(col(Exchange.id))
        counts["alternates"] = conn.execute(
            delete(AlternateAnswer).where(col(AlternateAnswer.exchange_id).not_in(kept))).rowcount or 0
        counts["nodes"] = delete_orphan_nodes(conn)
        counts["blobs"] = delete_orphan_blobs(conn)
        counts["raw"] = delete_orphan_raw(conn)
        for part in _chunks(touched):
            left = {s for (s,) in conn.execute(select(session).where(session.in_(part)).distinct()) if s is not None}
            gone = [s for s in part if s not in left]
            if gone:
                counts["sessions"] += conn.execute(delete(Session).where(col(Session.id).in_(gone))).rowcount or 0
            update_sessions(conn, {s: {} for s in left})
    return counts


def delete_orphan_nodes(conn: Connection) -> int:
    """Delete the message nodes on no remaining exchange's message path; how many went."""
    kept = ancestry(select(col(Exchange.messages_tail)))
    count = select(func.count()).select_from(MessageNode)
    before = conn.execute(count).scalar_one()
    conn.execute(delete(MessageNode).where(col(MessageNode.id).not_in(select(kept.c.id))))
    # counted, not taken from rowcount: not every driver reports it for a DELETE under WITH
    return before - conn.execute(count).scalar_one()


def delete_orphan_blobs(conn: Connection) -> int:
    """Delete the blobs no remaining exchange, skeleton or message node refers to; how many went."""
    used: set[str] = set()
    for row in conn.execute(select(col(Exchange.response_message_hash), col(Exchange.request_skeleton_hash),
                                   col(Exchange.request_headers_hash)).distinct()):
        used.update(h for h in row if h)
    skeletons = [h for (h,) in conn.execute(select(col(Exchange.request_skeleton_hash)).distinct()) if h]
    for part in _chunks(skeletons):
        for (text,) in conn.execute(select(col(Blob.json_text)).where(col(Blob.hash).in_(part))):
            skeleton = Skeleton.parse(text)
            used.update([*(skeleton.system_refs or []), *(skeleton.tool_refs or [])])
    used.update(h for (h,) in conn.execute(select(col(MessageNode.message_hash)).distinct()))
    stale = [h for (h,) in conn.execute(select(col(Blob.hash))) if h not in used]
    for part in _chunks(stale):
        conn.execute(delete(Blob).where(col(Blob.hash).in_(part)))
    return len(stale)


def delete_orphan_raw(conn: Connection) -> int:
    """Delete the raw bodies no remaining exchange refers to; how many went."""
    used: set[str] = set()
    for row in conn.execute(select(col(Exchange.request_raw_hash), col(Exchange.response_raw_hash),
                                   col(Exchange.provider_response_hash))):
        used.update(h for h in row if h)
    stale = [h for (h,) in conn.execute(select(col(RawBody.hash))) if h not in used]
    for part in _chunks(stale):
        conn.execute(delete(RawBody).where(col(RawBody.hash).in_(part)))
    return len(stale)


def reset(url: str) -> str:
    """Delete the SQLite file (and its WAL files), or drop every ccbridge table elsewhere; what was done."""
    path = sqlite_path(url)
    if path is not None:
        removed = [p for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
                   if p.exists()]
        for p in removed:
            p.unlink()
        return f"deleted {path}" if removed else f"nothing to delete: {path} does not exist"
    engine = open_engine(url, create=False)
    try:
        SQLModel.metadata.drop_all(engine)
    finally:
        engine.dispose()
    return f"dropped the ccbridge tables of {engine.url.render_as_string(hide_password=True)}"
