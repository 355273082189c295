"""Bring a capture database written by an earlier release up to the current layout, when it is opened.

Release 7d15ee9 kept each request's header list, skeleton and system/tool references on its exchange row
(columns `request_headers`, `request_skeleton`, `system_refs`, `tool_refs`, the first NOT NULL); now both
are content-addressed Blobs (see models.py). `create_all` adds missing tables but never alters one, so the
exchange table is upgraded here, in these steps:

1. add the new exchange columns (nullable, as the model has them);
2. convert the rows in batches of `BATCH`, one transaction each: the old header list becomes a header piece
   and its varying values, the old skeleton and references a skeleton piece (the writer's own functions);
   a row counts as converted once its `request_headers_hash` is set, so a crash loses at most a batch;
3. once no row is left to convert, drop the old columns and the index on session_id alone (the
   session/started_at index covers it);
4. make flow_id unique if it is not (the journal's replay relies on it), keeping the first row of each id;
   every release so far declared it unique, so this guards databases altered by hand.

Each step checks what is left to do, so a second run changes nothing and an interrupted one resumes.
Processes opening the database together take turns: on PostgreSQL under an advisory lock held for the whole
upgrade, on SQLite each step in a write transaction (BEGIN IMMEDIATE) that reads what is left first.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, func, inspect, select, text, update
from sqlalchemy.engine import Connection, Engine

from .inserts import insert_ignoring_duplicates
from .models import Blob, Exchange, table_of
from .pieces import Skeleton
from .record import Rows, set_request_headers

log = logging.getLogger("ccbridge.storage")

BATCH = 500
OLD_COLUMNS = ("request_headers", "request_skeleton", "system_refs", "tool_refs")
NEW_COLUMNS = ("request_headers_hash", "request_header_values", "request_skeleton_hash", "problems")
OLD_INDEXES = ("ix_exchange_session_id",)
FLOW_ID_UNIQUE = "uq_exchange_flow_id"

# The exchange columns a conversion reads, as the old release declared them.
_OLD = Table(
    "exchange", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("request_headers", JSON),
    Column("request_skeleton", JSON),
    Column("system_refs", JSON),
    Column("tool_refs", JSON),
    Column("request_headers_hash", String(64)),
)


def upgrade(engine: Engine, lock_key: int) -> None:
    """Upgrade the exchange table if it has an earlier layout; nothing to do costs one look at the schema."""
    if not _outdated(engine):
        return
    with engine.connect() as conn:
        with _exclusive(conn, lock_key):
            if _outdated(conn):  # another process may have finished it while this one waited
                _run(conn)


def _outdated(bind: Engine | Connection) -> bool:
    schema = inspect(bind)
    if not schema.has_table("exchange"):
        return False
    columns = {c["name"] for c in schema.get_columns("exchange")}
    indexes = {i["name"] for i in schema.get_indexes("exchange")}
    return (bool(columns & set(OLD_COLUMNS)) or not set(NEW_COLUMNS) <= columns or bool(indexes & set(OLD_INDEXES))
            or not _flow_id_unique(bind))


def _flow_id_unique(bind: Engine | Connection) -> bool:
    schema = inspect(bind)
    keys: list[list[str | None]] = [list(c["column_names"]) for c in schema.get_unique_constraints("exchange")]
    keys += [i["column_names"] for i in schema.get_indexes("exchange") if i["unique"]]
    return any(list(columns) == ["flow_id"] for columns in keys)


@contextmanager
def _exclusive(conn: Connection, lock_key: int) -> Iterator[None]:
    """On PostgreSQL: one upgrader at a time for as long as the upgrade runs (a lock of the session)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key})
    conn.commit()
    try:
        yield
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})
        conn.commit()


@contextmanager
def _step(conn: Connection) -> Iterator[None]:
    """One transaction; on SQLite a write transaction from its start, so its checks see what others left."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _run(conn: Connection) -> None:
    if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        # checked first: a database converted but left with its NOT NULL old column would refuse every insert
        raise RuntimeError(f"upgrading this capture database needs SQLite 3.35 or newer (for DROP COLUMN); "
                           f"this Python has {sqlite3.sqlite_version}")
    left = conn.execute(select(func.count()).select_from(_OLD)).scalar_one()
    log.warning("ccbridge: upgrading the capture database: %d exchanges (request headers and skeletons "
                "become shared pieces); done once", left)
    with _step(conn):
        _add_columns(conn)
    converted = 0
    while True:
        with _step(conn):
            done = _convert_batch(conn) if _has_old_columns(conn) else 0
        if not done:
            break
        converted += done
    with _step(conn):
        _drop_old(conn)
    with _step(conn):
        _make_flow_id_unique(conn)
    log.warning("ccbridge: capture database upgraded (%d exchanges converted)", converted)


def _columns(conn: Connection) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns("exchange")}


def _has_old_columns(conn: Connection) -> bool:
    return bool(_columns(conn) & set(OLD_COLUMNS))


def _add_columns(conn: Connection) -> None:
    present = _columns(conn)
    table = table_of(Exchange)
    for name in NEW_COLUMNS:
        if name not in present:
            kind = table.c[name].type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE exchange ADD COLUMN {name} {kind}")


def _convert_batch(conn: Connection) -> int:
    """Convert up to BATCH unconverted rows; how many it converted."""
    old = conn.execute(select(_OLD).where(_OLD.c.request_headers_hash.is_(None)).order_by(_OLD.c.id)
                       .limit(BATCH)).all()
    pieces: dict[str, dict[str, Any]] = {}
    changes = []
    for row in old:
        rows = Rows({})
        set_request_headers(rows, row.request_headers or [])
        if row.request_skeleton is not None:
            skeleton = Skeleton(row.request_skeleton, row.system_refs, row.tool_refs).piece()
            rows.pieces[skeleton.hash] = skeleton
            rows.exchange["request_skeleton_hash"] = skeleton.hash
        for piece in rows.pieces.values():
            pieces[piece.hash] = {"hash": piece.hash, "kind": piece.kind, "size": len(piece.json_text),
                                  "json_text": piece.json_text}
        changes.append({"row_id": row.id, "headers_hash": rows.exchange["request_headers_hash"],
                        "header_values": rows.exchange["request_header_values"],
                        "skeleton_hash": rows.exchange.get("request_skeleton_hash"),
                        "problems": rows.problems or None})
    insert_ignoring_duplicates(conn, table_of(Blob), list(pieces.values()))
    if changes:
        table = table_of(Exchange)
        conn.execute(
            update(table).where(table.c.id == bindparam("row_id")).values(
                request_headers_hash=bindparam("headers_hash"), request_header_values=bindparam("header_values"),
                request_skeleton_hash=bindparam("skeleton_hash"), problems=bindparam("problems")),
            changes,
        )
    return len(changes)


def _drop_old(conn: Connection) -> None:
    indexes = {i["name"] for i in inspect(conn).get_indexes("exchange")}
    for name in OLD_INDEXES:
        if name in indexes:
            conn.exec_driver_sql(f"DROP INDEX {name}")
    present = _columns(conn)
    for name in OLD_COLUMNS:
        if name in present:
            conn.exec_driver_sql(f"ALTER TABLE exchange DROP COLUMN {name}")


def _make_flow_id_unique(conn: Connection) -> None:
    if _flow_id_unique(conn):
        return
    table = table_of(Exchange)
    first = select(func.min(table.c.id)).group_by(table.c.flow_id)
    doubles = conn.execute(table.delete().where(table.c.id.not_in(first))).rowcount
    if doubles:
        # session summaries still count them until the session's next write recomputes its summary
        log.warning("ccbridge: %d exchanges repeated a flow id stored before them; kept the first of each", doubles)
    conn.exec_driver_sql(f"CREATE UNIQUE INDEX {FLOW_ID_UNIQUE} ON exchange (flow_id)")
