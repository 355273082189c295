"""`ccbridge`: maintenance of the capture database. Deleting captures is a command, never a web button.

    ccbridge prune --days 30 [--db URL]   delete exchanges older than 30 days, then what only they used
    ccbridge db-reset [--db URL] [--yes]  delete the whole database (asks first on a terminal)
    ccbridge status [--journal DIR]       the journal: size, exchanges pending (oldest), recorded, failed
    ccbridge replay N --route PROVIDER/MODEL [--route ...]
                                          send request N again to each route, store and compare the answers

The database is --db, else $CCBRIDGE_STORAGE_URL, else `storage.url` of config.yaml, else the default SQLite
file: the same rule as the proxy's and the viewer's (`ccbridge.settings.storage_url`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlmodel import Session

from .errors import ConfigError
from .headers import HeaderView
from .prices import exchange_cost, tokens_of
from .routing.alternate import Target, ask_each, resolve_target
from .settings import Settings, journal_dir, load_settings, storage_url
from .storage import read
from .storage.alternates import alternate_row, store_alternate
from .storage.db import open_engine
from .storage.maintenance import prune, reset
from .storage.status import journal_report

DB_HELP = "SQLAlchemy URL (default: $CCBRIDGE_STORAGE_URL, else config storage.url, else SQLite)"
REPLAY_COLUMNS = ("route", "in", "out", "cost", "ttfb", "duration", "stop", "answer")


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


def replay(exchange_id: int, routes: Sequence[str], settings: Settings, url: str, timeout: float | None) -> int:
    """`ccbridge replay`: ask each route for its answer to a recorded request, store the answers, print them."""
    targets = [resolve_target(text, settings.routing, os.environ) for text in routes]  # ConfigError: nothing sent
    engine = open_engine(url)
    try:
        with Session(engine) as db:
            row = read.load_exchange(db, exchange_id)
            if row is None:
                print(f"ccbridge: no request #{exchange_id} is recorded in {url}", file=sys.stderr)
                return 1
            body = read.rebuild_request_body(db, row)
            beta = HeaderView(read.request_headers(db, row)).get("anthropic-beta")
            original = [_original_line(row, read.rebuild_answer(db, row))]
        if isinstance(body, bytes):
            body = _json_object(body)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            print(f"ccbridge: request #{exchange_id} is not a Messages request ({row.method} {row.path})",
                  file=sys.stderr)
            return 1
        answers = asyncio.run(ask_each(body, targets, timeout=timeout or settings.routing.timeout,
                                       anthropic_beta=beta))
        lines = []
        for target, answer in zip(targets, answers, strict=True):
            store_alternate(engine, alternate_row(exchange_id, "replay", answer))
            lines.append(_replay_line(target, answer))
    finally:
        engine.dispose()
    print("\n".join(table([list(REPLAY_COLUMNS), *original, *lines])))
    failed = [f"{line[0]}: {answer['error']}" for line, answer in zip(lines, answers, strict=True) if answer["error"]]
    for problem in failed:
        print(f"ccbridge: {problem}", file=sys.stderr)
    print(f"stored {len(answers)} replay(s) of request #{exchange_id}")
    return 1 if failed and len(failed) == len(answers) else 0


def _original_line(row: Any, answer: Mapping[str, Any] | None) -> list[str]:
    route = row.route or {}
    label = f"{route['provider']}/{route['model']}" if route.get("provider") else f"anthropic/{row.model or '?'}"
    tokens = tokens_of(row)
    price = exchange_cost(row)
    return [f"original {label}", str(tokens.input + tokens.cache_read + tokens.cache_write), str(tokens.output),
            _usd(float(price) if price is not None else None), _ms(_since(row.started_at, row.first_byte_at)),
            _ms(_since(row.started_at, row.finished_at)), row.stop_reason or "—", answer_summary(answer)]


def _replay_line(target: Target, answer: Mapping[str, Any]) -> list[str]:
    message = answer["answer"]
    tokens_in = (answer["input_tokens"] or 0) + (answer["cache_read_tokens"] or 0)
    return [target.label, str(tokens_in) if message else "—", _count(answer["output_tokens"]),
            _usd(answer["cost_usd"]), _ms(answer["ttfb_ms"]), _ms(answer["duration_ms"]),
            (message or {}).get("stop_reason") or "—",
            f"ERROR {answer['error']}" if answer["error"] and not message else answer_summary(message)]


def answer_summary(message: Mapping[str, Any] | None, width: int = 60) -> str:
    """The first line of an answer's text, and the tools it calls: `text… [Read, Grep]`."""
    blocks = [b for b in (message or {}).get("content") or [] if isinstance(b, Mapping)]
    text = next((b.get("text") or "" for b in blocks if b.get("type") == "text" and (b.get("text") or "").strip()), "")
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) > width:
        first = first[: width - 1] + "…"
    tools = [str(b.get("name")) for b in blocks if b.get("type") == "tool_use"]
    return " ".join(part for part in (first, f"[{', '.join(tools)}]" if tools else "") if part) or "—"


def table(rows: list[list[str]]) -> list[str]:
    """Rows as aligned text columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _since(start: Any, end: Any) -> float | None:
    return (end - start).total_seconds() * 1000 if start is not None and end is not None else None


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.4f}" if value and abs(value) < 0.01 else f"${value:,.2f}"


def _json_object(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def main(argv: Sequence[str] | None = None, ask: Callable[[str], str] = input) -> int:
    parser = argparse.ArgumentParser(prog="ccbridge", description="Maintenance of the ccbridge capture database, "
                                     "and replays of recorded requests on other models.")
    parser.add_argument("--config", help="config.yaml to read (default: $CCBRIDGE_CONFIG, else ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prune", help="delete captures older than N days")
    p.add_argument("--days", type=float, required=True, help="keep the last N days")
    p.add_argument("--db", help=DB_HELP)
    r = commands.add_parser("db-reset", help="delete the whole capture database")
    r.add_argument("--db", help=DB_HELP)
    r.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    st = commands.add_parser("status", help="the journal between proxy and database: size, pending, counts")
    st.add_argument("--journal", help="journal folder (default: config storage.journal_dir, else beside the "
                                      "default SQLite database)")
    rp = commands.add_parser("replay", help="send a recorded request to other models; store and compare answers")
    rp.add_argument("request", type=int, help="the request number (as in the viewer's /requests/<n>)")
    rp.add_argument("--route", action="append", required=True, metavar="PROVIDER/MODEL",
                    help="a provider of config.yaml and its model, or anthropic/<model> (needs $ANTHROPIC_API_KEY); "
                         "give several to compare")
    rp.add_argument("--db", help=DB_HELP)
    rp.add_argument("--timeout", type=float, help="seconds to wait for each answer (default: routing.timeout)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, check_keys=False)
        if args.command == "status":
            return journal_status(journal_dir(args.journal, settings))
        url = database_url(args.db, settings)
        if args.command == "replay":
            return replay(args.request, args.route, settings, url, args.timeout)
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
