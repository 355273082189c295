"""Inserts that several writers may run at once on one database (proxies sharing a PostgreSQL).

Content-addressed rows are inserted with "on conflict do nothing": a piece another writer stored first is
simply there. Rows go in key order: on PostgreSQL a writer inserting a key that another one has inserted
but not yet committed waits for it, and two writers waiting on each other's keys would deadlock; taking
keys in one global order (table by table, key by key) rules that out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError


def insert_ignoring_duplicates(conn: Connection, table: Table, rows: list[dict[str, Any]],
                               key: str | None = None) -> None:
    """INSERT that skips rows whose key exists, in the order of column `key` (default: the primary key)."""
    if not rows:
        return
    key = key or table.primary_key.columns.values()[0].name
    rows = sorted(rows, key=lambda row: row[key])
    if conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(table).on_conflict_do_nothing(), rows)
    elif conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
    else:
        for row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(insert(table), [row])
            except IntegrityError:
                pass
