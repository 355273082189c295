"""Committing captured exchanges: rows built, inserted idempotently, in batches.

`Committer` does the work for both writers: the journal's writer process (`storage/drain.py`, what the
proxy uses) and `Writer`, a thread fed by an in-memory queue for tests and tools. An exchange that cannot be
decomposed is stored with its raw bytes instead. A shadow route's answer (a record whose route names the flow it
shadows) becomes an `AlternateAnswer`, linked to its exchange by flow id in whichever batch stores the second
of the two.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import inspect, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from .. import redact
from ..captured import CapturedExchange
from .alternates import shadow_rows
from .inserts import insert_ignoring_duplicates
from .maintenance import update_sessions
from .models import AlternateAnswer, Blob, Exchange, MessageNode, Meta, RawBody, table_of
from .pieces import raw_row
from .record import EXCHANGE_DEFAULTS, Rows, body_to_store, build_rows, finish, set_request_headers, when

log = logging.getLogger("ccbridge.storage")
_STOP = object()


def load_salt(engine: Engine) -> bytes:
    """The installation's salt for secret fingerprints, created on first use."""
    with engine.begin() as conn:
        value = conn.execute(select(col(Meta.value)).where(col(Meta.key) == "fingerprint_salt")).scalar()
        if value is None:
            insert_ignoring_duplicates(
                conn, table_of(Meta), [{"key": "fingerprint_salt", "value": secrets.token_hex(16)}]
            )
            value = conn.execute(select(col(Meta.value)).where(col(Meta.key) == "fingerprint_salt")).scalar()
    return bytes.fromhex(str(value))


class Committer:
    """Builds the rows of captured exchanges and commits them, one transaction per batch.

    Storing an exchange twice leaves one row: exchanges are keyed by their flow id and inserted with "on
    conflict do nothing", as are the content-addressed pieces. The journal's writer relies on this when it
    replays what a killed writer may already have committed.
    """

    def __init__(self, engine: Engine, build: Callable[[CapturedExchange, bytes], Rows] = build_rows) -> None:
        self.engine = engine
        self.build_rows = build
        self.salt = load_salt(engine)
        self.shadows_storable = _has_column(engine, table_of(AlternateAnswer).name, "flow_id")
        if not self.shadows_storable:
            log.error("ccbridge: the table %s predates shadow answers (no flow_id column): shadow answers are set "
                      "aside; `ccbridge db-reset` or dropping that table makes it anew", table_of(AlternateAnswer).name)
        self._known: OrderedDict[str, None] = OrderedDict()  # hashes already in the database (bounded)
        self._logged: set[str] = set()

    def build(self, captured: CapturedExchange) -> Rows:
        """The rows of one exchange, or its raw record when it cannot be decomposed (raises if not even that)."""
        if captured.shadow_of() is not None and not self.shadows_storable:
            raise ValueError("this database cannot hold shadow answers (its AlternateAnswer table is too old)")
        try:
            rows = (shadow_rows(captured, self.salt) if captured.shadow_of() is not None
                    else self.build_rows(captured, self.salt))
        except Exception as exc:
            self.log_once(f"build:{type(exc).__name__}", f"flow {captured.flow_id}: {exc!r}; storing raw bytes")
            rows = raw_rows(captured, self.salt, problem=f"could not be parsed: {exc!r:.300}; stored raw")
        for problem in rows.problems:
            log.debug("ccbridge: flow %s: %s", captured.flow_id, problem)
        return rows

    def commit(self, built: list[Rows], also: Callable[[Connection], None] | None = None) -> None:
        """Insert the rows in one transaction, with `also` run inside it (the journal's checkpoint)."""
        blobs: dict[str, dict[str, Any]] = {}
        nodes: dict[str, dict[str, Any]] = {}
        raw: dict[str, dict[str, Any]] = {}
        for rows in built:
            for digest, piece in rows.pieces.items():
                if digest not in self._known:
                    blobs[digest] = {"hash": digest, "kind": piece.kind, "size": len(piece.json_text),
                                     "json_text": piece.json_text}
            for node in rows.nodes:
                if node.id not in self._known:
                    nodes[node.id] = {"id": node.id, "parent_id": node.parent_id,
                                      "message_hash": node.message_hash, "depth": node.depth}
            for digest, row in rows.raw.items():
                if digest not in self._known:
                    raw[digest] = row
        exchanges = [rows for rows in built if rows.alternate is None]
        alternates = [rows.alternate for rows in built if rows.alternate is not None]
        with self.engine.begin() as conn:
            insert_ignoring_duplicates(conn, table_of(Blob), list(blobs.values()))
            insert_ignoring_duplicates(conn, table_of(MessageNode), list(nodes.values()))
            insert_ignoring_duplicates(conn, table_of(RawBody), list(raw.values()))
            insert_ignoring_duplicates(conn, table_of(Exchange), [rows.exchange for rows in exchanges], key="flow_id")
            insert_ignoring_duplicates(conn, table_of(AlternateAnswer), alternates, key="flow_id")
            if self.shadows_storable:
                link_alternates(conn, {*(r.exchange["flow_id"] for r in exchanges),
                                       *(a["flow_id"] for a in alternates)})
            update_sessions(conn, session_hints(exchanges))
            if also is not None:
                also(conn)
        self._remember([*blobs, *nodes, *raw])

    def _remember(self, digests: Iterable[str]) -> None:
        for digest in digests:
            self._known[digest] = None
        while len(self._known) > 200_000:
            self._known.popitem(last=False)

    def log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.error("ccbridge: %s", message)
        else:
            log.debug("ccbridge: %s", message)


class Writer:
    """An in-process writer (tests, tools): a thread commits what `submit` queues, in batches."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 200,
        batch_seconds: float = 0.25,
        build: Callable[[CapturedExchange, bytes], Rows] = build_rows,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.committer = Committer(engine, build)
        self.queue: queue.Queue[Any] = queue.Queue()
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="ccbridge-writer", daemon=True)
        self._thread.start()

    def submit(self, captured: CapturedExchange) -> None:
        """Called from mitmproxy hooks: never blocks."""
        self.queue.put_nowait(captured)

    def close(self, timeout: float = 120.0) -> None:
        """Write everything queued so far, then stop the thread."""
        self.queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("ccbridge: storage writer did not finish within %.0f s; %d queued", timeout, self.queue.qsize())

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted before this call is committed (tests and benchmarks)."""
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[CapturedExchange] = []
            waiters: list[threading.Event] = []
            deadline: float | None = None
            while len(batch) < self.batch_size:
                try:
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    item = self.queue.get(timeout=timeout)
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, threading.Event):
                    waiters.append(item)
                    break
                batch.append(item)
                deadline = deadline or time.monotonic() + self.batch_seconds
            if stopping:  # take what is still queued too
                batch.extend(self._drain())
            if batch:
                self._write_batch(batch)
            for waiter in waiters:
                waiter.set()

    def _drain(self) -> list[CapturedExchange]:
        items = []
        for _ in range(1_000_000):
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                item.set()
            elif item is not _STOP:
                items.append(item)
        return items

    def _write_batch(self, batch: list[CapturedExchange]) -> None:
        built: list[tuple[CapturedExchange, Rows]] = []
        for captured in batch:
            try:
                built.append((captured, self.committer.build(captured)))
            except Exception as exc:
                self.failed += 1
                log.error("ccbridge: could not record flow %s: %r", captured.flow_id, exc)
        try:
            self.committer.commit([rows for _, rows in built])
            self.written += len(built)
        except Exception as exc:
            self.committer.log_once("batch", f"batch of {len(built)} failed ({exc!r}); writing one at a time")
            for captured, rows in built:
                self._write_one(captured, rows)

    def _write_one(self, captured: CapturedExchange, rows: Rows) -> None:
        """Commit one exchange; if the database refuses its row, store the raw record instead."""
        try:
            self.committer.commit([rows])
        except Exception as refused:
            try:
                self.committer.commit([raw_rows(captured, self.committer.salt,
                                                problem=f"insert failed: {refused!r:.300}; stored raw")])
            except Exception as again:
                self.failed += 1
                log.error("ccbridge: could not store flow %s: %r", captured.flow_id, again)
                return
        self.written += 1


def _has_column(engine: Engine, table: str, column: str) -> bool:
    return column in {c["name"] for c in inspect(engine).get_columns(table)}


def link_alternates(conn: Connection, flow_ids: set[str]) -> None:
    """Point the unlinked alternate answers of these flows at their exchanges (where both are stored now)."""
    if not flow_ids:
        return
    alternate, exchange = table_of(AlternateAnswer).c, table_of(Exchange).c
    conn.execute(update(table_of(AlternateAnswer))
                 .where(alternate.exchange_id.is_(None), alternate.flow_id.in_(sorted(flow_ids)))
                 .values(exchange_id=select(exchange.id).where(exchange.flow_id == alternate.flow_id)
                         .scalar_subquery()))


def raw_rows(captured: CapturedExchange, salt: bytes, problem: str | None = None) -> Rows:
    """The fallback record: request line, redacted headers and raw bytes, nothing parsed."""
    if captured.shadow_of() is not None:
        return shadow_rows(captured, salt, problem or "could not be stored whole")
    exchange = dict(
        EXCHANGE_DEFAULTS, flow_id=captured.flow_id, started_at=when(captured.started_at),
        finished_at=when(captured.finished_at), method=captured.method, scheme=captured.scheme,
        host=captured.host, port=captured.port, path=redact.redact_path(captured.path, salt),
        status_code=captured.status_code,
        complete=captured.complete, error_kind=captured.error_kind or "error",
        error_message=captured.error_message or "recorded raw: the exchange could not be parsed",
    )
    rows = Rows(exchange)
    set_request_headers(rows, redact.redact_headers(captured.request_headers, salt))
    for column, data in (("request_raw_hash", captured.request_body), ("response_raw_hash",
                                                                        b"".join(captured.response_chunks))):
        if data:
            row = raw_row(body_to_store(captured, data, salt))
            rows.raw[row["hash"]] = row
            exchange[column] = row["hash"]
    if captured.request_body:
        exchange["request_body_kind"] = "raw"
    if captured.response_headers is not None:
        exchange["response_headers"] = redact.redact_headers(captured.response_headers, salt)
    if problem:
        rows.problems.append(problem)
    finish(rows)
    return rows


def session_hints(built: list[Rows]) -> dict[str, dict[str, str]]:
    """Per session in a batch: the newest client version and a project directory, where the traffic shows them."""
    hints: dict[str, dict[str, str]] = {}
    for rows in sorted(built, key=lambda r: r.exchange["started_at"]):
        sid = rows.exchange["session_id"]
        if sid is None:
            continue
        hint = hints.setdefault(sid, {})
        if rows.exchange["client_version"]:
            hint["client_version"] = rows.exchange["client_version"]
        if rows.project_dir and not rows.exchange["is_subagent"]:
            hint.setdefault("project_dir", rows.project_dir)
    return hints
