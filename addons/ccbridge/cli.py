"""`ccbridge`: maintenance of the capture database. Deleting captures is a command, never a web button.

    ccbridge prune --days 30 [--db URL]   delete exchanges older than 30 days, then what only they used
    ccbridge db-reset [--db URL] [--yes]  delete the whole database (asks first on a terminal)
    ccbridge status [--journal DIR]       the journal: size, exchanges pending (oldest), recorded, failed

The database is --db, else `storage.url` of config.yaml, else the default SQLite file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from .errors import ConfigError
from .storage.db import default_url, open_engine, sqlite_path
from .storage.journal import default_directory
from .storage.models import Blob, Exchange, MessageNode, RawBody, Session
from .storage.status import journal_report
from .storage.writer import update_sessions

_BATCH = 500


def database_url(option: str | None, config_option: str | None = None) -> str:
    if option:
        return option
    from .config import load_config

    return load_config(config_option).storage.url or default_url()


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + _BATCH] for i in range(0, len(items), _BATCH)]


def prune(engine: Engine, days: float, now: datetime | None = None) -> dict[str, int]:
    """Delete exchanges that started more than `days` ago, then orphaned pieces and emptied sessions."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    counts = {"exchanges": 0, "sessions": 0, "blobs": 0, "nodes": 0, "raw": 0}
    with engine.begin() as conn:
        touched = [s for (s,) in conn.execute(
            select(Exchange.session_id).where(Exchange.started_at < cutoff, Exchange.session_id.is_not(None))  # type: ignore[union-attr]
            .distinct())]
        counts["exchanges"] = conn.execute(delete(Exchange).where(Exchange.started_at < cutoff)).rowcount or 0
        if not counts["exchanges"]:
            return counts
        counts["nodes"] = _delete_orphan_nodes(conn)
        counts["blobs"] = _delete_orphan_blobs(conn)
        counts["raw"] = _delete_orphan_raw(conn)
        for part in _chunks(touched):
            left = {s for (s,) in conn.execute(select(Exchange.session_id).where(Exchange.session_id.in_(part))  # type: ignore[union-attr]
                                               .distinct())}
            gone = [s for s in part if s not in left]
            if gone:
                counts["sessions"] += conn.execute(delete(Session).where(Session.id.in_(gone))).rowcount or 0  # type: ignore[attr-defined]
            update_sessions(conn, {s: {} for s in left})
    return counts


_ORPHAN_NODES = text(
    "WITH RECURSIVE keep(id, parent_id) AS ("
    " SELECT id, parent_id FROM messagenode WHERE id IN (SELECT messages_tail FROM exchange)"
    " UNION SELECT m.id, m.parent_id FROM messagenode m JOIN keep k ON m.id = k.parent_id)"
    " DELETE FROM messagenode WHERE id NOT IN (SELECT id FROM keep)"
)


def _delete_orphan_nodes(conn: Connection) -> int:
    """Nodes that are not on the message path of any remaining exchange."""
    count = select(func.count()).select_from(MessageNode)
    before = conn.execute(count).scalar_one()
    conn.execute(_ORPHAN_NODES)  # rowcount of a DELETE under WITH is not reported by every driver
    return before - conn.execute(count).scalar_one()


def _delete_orphan_blobs(conn: Connection) -> int:
    used: set[str] = set()
    for system, tools, answer in conn.execute(select(Exchange.system_refs, Exchange.tool_refs,
                                                     Exchange.response_message_hash)):
        used.update(system or [])
        used.update(tools or [])
        if answer:
            used.add(answer)
    used.update(h for (h,) in conn.execute(select(MessageNode.message_hash).distinct()))
    stale = [h for (h,) in conn.execute(select(Blob.hash)) if h not in used]
    for part in _chunks(stale):
        conn.execute(delete(Blob).where(Blob.hash.in_(part)))  # type: ignore[attr-defined]
    return len(stale)


def _delete_orphan_raw(conn: Connection) -> int:
    used: set[str] = set()
    for row in conn.execute(select(Exchange.request_raw_hash, Exchange.response_raw_hash,
                                   Exchange.provider_response_hash)):
        used.update(h for h in row if h)
    stale = [h for (h,) in conn.execute(select(RawBody.hash)) if h not in used]
    for part in _chunks(stale):
        conn.execute(delete(RawBody).where(RawBody.hash.in_(part)))  # type: ignore[attr-defined]
    return len(stale)


def reset(url: str) -> str:
    """Delete the SQLite file (and its WAL files), or drop every ccbridge table elsewhere."""
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


def _confirm(question: str, ask: Callable[[str], str]) -> bool:
    try:
        return ask(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def journal_status(directory: str | None) -> int:
    """`ccbridge status`: print what the journal holds and what the writer last said."""
    print("\n".join(journal_report(Path(directory) if directory else default_directory())))
    return 0


def main(argv: Sequence[str] | None = None, ask: Callable[[str], str] = input) -> int:
    parser = argparse.ArgumentParser(prog="ccbridge", description="Maintenance of the ccbridge capture database.")
    parser.add_argument("--config", help="config.yaml to read (default: $CCBRIDGE_CONFIG, else ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prune", help="delete captures older than N days")
    p.add_argument("--days", type=float, required=True, help="keep the last N days")
    p.add_argument("--db", help="SQLAlchemy URL (default: config storage.url, else the local SQLite file)")
    r = commands.add_parser("db-reset", help="delete the whole capture database")
    r.add_argument("--db", help="SQLAlchemy URL (default: config storage.url, else the local SQLite file)")
    r.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    st = commands.add_parser("status", help="the journal between proxy and database: size, pending, counts")
    st.add_argument("--journal", help="journal folder (default: beside the default SQLite database)")
    args = parser.parse_args(argv)
    if args.command == "status":
        return journal_status(args.journal)
    try:
        url = database_url(args.db, args.config)
    except ConfigError as exc:
        print(f"ccbridge: {exc}", file=sys.stderr)
        return 2
    if args.command == "prune":
        if args.days < 0:
            print("ccbridge: --days must be 0 or more", file=sys.stderr)
            return 2
        engine = open_engine(url)
        try:
            counts = prune(engine, args.days)
        finally:
            engine.dispose()
        print("pruned: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("ccbridge: db-reset deletes every capture; run it on a terminal or add --yes", file=sys.stderr)
            return 1
        if not _confirm(f"Delete every capture in {url}? [y/N] ", ask):
            print("nothing deleted")
            return 1
    print(reset(url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
