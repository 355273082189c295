"""`ccbridge`: maintenance of the capture database. Deleting captures is a command, never a web button.

    ccbridge prune --days 30 [--db URL]   delete exchanges older than 30 days, then what only they used
    ccbridge db-reset [--db URL] [--yes]  delete the whole database (asks first on a terminal)
    ccbridge status [--journal DIR]       the journal: size, exchanges pending (oldest), recorded, failed

The database is --db, else $CCBRIDGE_STORAGE_URL, else `storage.url` of config.yaml, else the default SQLite
file: the same rule as the proxy's and the viewer's (`ccbridge.settings.storage_url`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ConfigError
from .settings import Settings, journal_dir, load_settings, storage_url
from .storage.db import open_engine
from .storage.maintenance import prune, reset
from .storage.status import journal_report


def database_url(option: str | None, settings: Settings) -> str:
    """The database to work on: --db, else $CCBRIDGE_STORAGE_URL, else config.yaml's, else the default."""
    return storage_url(option, settings)


def _confirm(question: str, ask: Callable[[str], str]) -> bool:
    try:
        return ask(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def journal_status(directory: Path) -> int:
    """`ccbridge status`: print what the journal holds and what the writer last said."""
    print("\n".join(journal_report(directory)))
    return 0


def main(argv: Sequence[str] | None = None, ask: Callable[[str], str] = input) -> int:
    parser = argparse.ArgumentParser(prog="ccbridge", description="Maintenance of the ccbridge capture database.")
    parser.add_argument("--config", help="config.yaml to read (default: $CCBRIDGE_CONFIG, else ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prune", help="delete captures older than N days")
    p.add_argument("--days", type=float, required=True, help="keep the last N days")
    p.add_argument("--db", help="SQLAlchemy URL (default: $CCBRIDGE_STORAGE_URL, else config storage.url, else SQLite)")
    r = commands.add_parser("db-reset", help="delete the whole capture database")
    r.add_argument("--db", help="SQLAlchemy URL (default: $CCBRIDGE_STORAGE_URL, else config storage.url, else SQLite)")
    r.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    st = commands.add_parser("status", help="the journal between proxy and database: size, pending, counts")
    st.add_argument("--journal", help="journal folder (default: config storage.journal_dir, else beside the "
                                      "default SQLite database)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, check_keys=False)
        if args.command == "status":
            return journal_status(journal_dir(args.journal, settings))
        url = database_url(args.db, settings)
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
