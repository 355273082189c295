"""The database engine: SQLite by default (in the user's data directory), any SQLAlchemy URL otherwise."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import SQLModel, create_engine

from ..settings import default_url
from . import models  # noqa: F401  (registers the tables)
from .columns import add_new_columns
from .upgrade import upgrade


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def open_engine(url: str | None = None, *, create: bool = True, busy_seconds: float = 30.0) -> Engine:
    """An engine for `url`, with the tables created; SQLite gets WAL so the viewer reads while we write.

    `busy_seconds`: how long SQLite waits for another connection's lock before it reports "database is locked".
    """
    url = url or default_url()
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_seconds} if path else {}, pool_pre_ping=not path)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=int(busy_seconds * 1000)))
    if create:
        create_tables(engine)
    return engine


# Any fixed number: the key of the PostgreSQL advisory lock that makes proxies create the tables one by one.
_CREATE_LOCK = 0x636362726964


def create_tables(engine: Engine) -> None:
    """Create the missing tables and columns, upgrade an earlier release's; processes opening it take turns."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first: two creators would race otherwise
        SQLModel.metadata.create_all(conn)
        add_new_columns(conn)
    upgrade(engine, _CREATE_LOCK)


def _sqlite_pragmas(connection: DBAPIConnection, _record: ConnectionPoolEntry, busy_ms: int) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
