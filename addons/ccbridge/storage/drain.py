"""Feeding the database from the journal: batches committed together with the position they reach.

Replay is the only path: at every start the writer reads the journal from the committed position, so
what a stopped, killed or crashed writer left is written by the next one with the same code. The position
(`JournalCheckpoint`) is updated in the transaction that inserts the rows, so a batch is either committed
with its position or not at all, and the counts in that row are exact; inserting an exchange twice would
leave one row anyway (see `Committer`).

Failures are told apart by a probe, a one-row write of the checkpoint: when a batch fails and the probe
fails too, the database is unavailable (server down, locked, disk full, read-only): nothing moves, and
the batch is tried again after a capped exponential backoff, with one log line when the outage starts and
one when it ends. When the probe succeeds, the batch is written one record at a time; a record that fails
alone is stored raw (its bytes, marked with the reason), and if even that fails it is set aside in the
journal's `failed/` folder with the reason and counted, so one bad record never blocks the rest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from .codec import unpack
from .inserts import insert_ignoring_duplicates
from .journal import START, Batch, Position, Reader, Record, journal_id
from .models import JournalCheckpoint, table_of
from .record import Rows
from .writer import Committer, raw_rows

log = logging.getLogger("ccbridge.storage")
STATUS_NAME = "status.json"
FAILED_DIR = "failed"
BATCH_BYTES = 32 * 1024 * 1024
# built rows held for one commit: a small record (a gzip bomb) can decode to capture.max_body_mb, so a batch
# of them would take gigabytes if every row were built before the commit
ROWS_BYTES = 64 * 1024 * 1024


class DatabaseUnavailable(Exception):
    """The database takes no writes at the moment (the cause is chained)."""


@dataclass
class Backoff:
    """Capped exponential: 0.5 s, 1 s, 2 s ... 30 s."""

    first: float = 0.5
    cap: float = 30.0
    current: float = 0.0

    def next(self) -> float:
        self.current = min(self.cap, self.current * 2 if self.current else self.first)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class Outage:
    """Logs a database outage once when it starts and once when it ends, not per exchange."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.error = ""

    def begin(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.time()
            self.error = describe(exc)
            log.error("ccbridge: the database is unavailable (%s); exchanges wait in the journal and are written "
                      "when it is back", self.error)

    def end(self, waiting: int) -> None:
        if self.since is not None:
            log.warning("ccbridge: the database is back after %.0f s; writing the %d exchanges that waited in "
                        "the journal", time.time() - self.since, waiting)
            self.since = None


def describe(exc: BaseException) -> str:
    """An exception in one line, with its cause (SQLAlchemy wraps the driver's error)."""
    cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and exc.__cause__ else exc
    text = f"{type(cause).__name__}: {cause}".splitlines()[0]
    return text[:300]


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def read_status(directory: Path) -> dict[str, Any]:
    """What the writer last wrote to the journal's status file ({} when there is none)."""
    try:
        return json.loads((directory / STATUS_NAME).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def rows_weight(rows: Rows | None) -> int:
    """About how many bytes the built rows hold: their pieces and raw bodies."""
    if rows is None:
        return 0
    return sum(len(piece.json_text) for piece in rows.pieces.values()) + sum(
        len(raw["data"]) for raw in rows.raw.values())


def set_aside(directory: Path, record: Record, reason: str) -> None:
    """Keep a record that cannot be stored, with the reason, in the journal's failed/ folder."""
    folder = directory / FAILED_DIR
    folder.mkdir(exist_ok=True, mode=0o700)
    name = f"{record.start.segment:012d}-{record.start.offset:012d}"
    (folder / f"{name}.record").write_bytes(record.payload)
    (folder / f"{name}.reason").write_text(reason + "\n")


def failure_reasons(directory: Path) -> dict[str, int]:
    """How many records are set aside, by reason."""
    reasons: dict[str, int] = {}
    for path in sorted((directory / FAILED_DIR).glob("*.reason")):
        reason = path.read_text(errors="replace").strip()
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


class Drain:
    """Reads the journal after the committed position and commits what it finds, batch by batch."""

    def __init__(self, connect: Callable[[], Engine], directory: Path, *, batch_size: int = 200,
                 run_start: Position | None = None, report: Callable[..., None] = lambda *message: None) -> None:
        self.connect = connect
        self.directory = directory
        self.reader = Reader(directory)
        self.journal = journal_id(directory)
        self.batch_size = batch_size
        self.report = report
        self.committer: Committer | None = None
        self.position = START
        self.recorded = 0
        self.failed = 0
        self.outage = Outage()
        self.database = ""
        self.run_start = run_start  # where this proxy's appends began: what lies before is a replay
        self.replaying = 0
        self._torn_logged: set[int] = set()

    def step(self) -> bool:
        """One batch; False when there was nothing to do. Raises DatabaseUnavailable."""
        if self.committer is None:
            self._open()
        batch = self.reader.read(self.position, self.batch_size, BATCH_BYTES)
        self._log_torn(batch)
        if not batch.records:
            if batch.end == self.position:
                return False
            self._commit_position(batch.end)  # past a sealed segment's end: lets it be deleted
        else:
            self._store(batch)
        if self.replaying and self.run_start is not None and self.position >= self.run_start:
            log.warning("ccbridge: the %d exchanges left in the journal by an earlier run are written", self.replaying)
            self.replaying = 0
        self.reader.release(self.position)
        self.write_status()
        return True

    def pending(self) -> int:
        return self.reader.backlog(self.position).records

    def write_status(self) -> None:
        write_atomically(self.directory / STATUS_NAME, json.dumps({
            "writer_pid": os.getpid(), "database": self.database, "updated_at": time.time(),
            "position": [self.position.segment, self.position.offset], "recorded": self.recorded,
            "failed": self.failed,
            "outage": None if self.outage.since is None else {"since": self.outage.since, "error": self.outage.error},
        }))

    def _open(self) -> None:
        try:
            engine = self.connect()
            committer = Committer(engine)
            with engine.begin() as conn:
                insert_ignoring_duplicates(conn, table_of(JournalCheckpoint), [
                    {"journal_id": self.journal, "segment": 0, "offset": 0, "recorded": 0, "failed": 0,
                     "updated_at": datetime.now(UTC)}])
                row = conn.execute(select(table_of(JournalCheckpoint)).where(
                    table_of(JournalCheckpoint).c.journal_id == self.journal)).one()
        except Exception as exc:
            raise DatabaseUnavailable(describe(exc)) from exc
        self.committer = committer
        self.database = engine.url.render_as_string(hide_password=True)
        self.position = Position(row.segment, row.offset)
        self.recorded, self.failed = row.recorded, row.failed
        self.report("connected", self.recorded, self.failed)
        self.write_status()
        if self.run_start is not None and self.position < self.run_start:
            self.replaying = self.reader.backlog(self.position, until=self.run_start).records
            if self.replaying:
                log.warning("ccbridge: %d exchanges were left in the journal %s by an earlier run; writing them now",
                            self.replaying, self.directory)

    def _log_torn(self, batch: Batch) -> None:
        for segment, size in batch.torn:
            if segment not in self._torn_logged:
                self._torn_logged.add(segment)
                log.warning("ccbridge: journal segment %d ends with %d bytes of a record cut short (a crash while "
                            "it was written); skipped", segment, size)

    def _checkpoint(self, position: Position, recorded: int, failed: int) -> Callable[[Connection], None]:
        table = table_of(JournalCheckpoint)

        def update(conn: Connection) -> None:
            conn.execute(table.update().where(table.c.journal_id == self.journal).values(
                segment=position.segment, offset=position.offset, recorded=recorded, failed=failed,
                updated_at=datetime.now(UTC)))
        return update

    def _commit_position(self, position: Position) -> None:
        self._transaction(lambda: self._write(self._checkpoint(position, self.recorded, self.failed)))
        self.position = position

    def _write(self, update: Callable[[Connection], None]) -> None:
        assert self.committer is not None
        with self.committer.engine.begin() as conn:
            update(conn)

    def _transaction(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:
            raise DatabaseUnavailable(describe(exc)) from exc

    def _store(self, batch: Batch) -> None:
        """Build and commit the batch's rows in groups of at most about ROWS_BYTES."""
        group: list[tuple[Record, Any, str]] = []
        weight = 0
        for record in batch.records:
            rows, reason = self._decode(record)
            group.append((record, rows, reason))
            weight += rows_weight(rows)
            if weight >= ROWS_BYTES:
                self._store_group(group, record.end)
                group, weight = [], 0
        if group:
            self._store_group(group, batch.end)
        elif self.position < batch.end:
            self._commit_position(batch.end)

    def _store_group(self, decoded: list[tuple[Record, Any, str]], end: Position) -> None:
        """Commit the built rows of consecutive records with the position `end`, or find the one that fails."""
        committer = self.committer
        assert committer is not None
        good = [rows for _, rows, _ in decoded if rows is not None]
        bad = len(decoded) - len(good)
        for record, rows, reason in decoded:
            if rows is None:
                set_aside(self.directory, record, reason)  # on disk before the checkpoint moves past it
        try:
            committer.commit(good, also=self._checkpoint(end, self.recorded + len(good), self.failed + bad))
        except Exception as exc:
            if not self._database_works():
                raise DatabaseUnavailable(describe(exc)) from exc
        else:
            for record, rows, reason in decoded:
                if rows is None:
                    self._announce(record, reason)
            self.position, self.recorded, self.failed = end, self.recorded + len(good), self.failed + bad
            return
        for record, rows, reason in decoded:  # the database works: find the record that does not go in
            if rows is None:
                self._fail(record, reason)
            else:
                self._store_one(record, rows)

    def _decode(self, record: Record) -> tuple[Any, str]:
        """(rows, "") or (None, why not)."""
        assert self.committer is not None
        if record.damaged:
            return None, "damaged in the journal (CRC mismatch)"
        try:
            captured = unpack(record.payload)
        except Exception as exc:
            return None, f"unreadable journal record: {describe(exc)}"
        try:
            return self.committer.build(captured), ""
        except Exception as exc:
            return None, f"could not be recorded: {describe(exc)}"

    def _store_one(self, record: Record, rows: Any) -> None:
        committer = self.committer
        assert committer is not None
        try:
            committer.commit([rows], also=self._checkpoint(record.end, self.recorded + 1, self.failed))
        except Exception as exc:
            if not self._database_works():
                raise DatabaseUnavailable(describe(exc)) from exc
            reason = f"the database refused it: {describe(exc)}"
            if not self._store_raw(record, reason):
                self._fail(record, reason)
                return
            committer.log_once(f"raw:{type(exc).__name__}", f"flow {rows.exchange['flow_id']}: {reason}; stored "
                                                            f"with its raw bytes")
        self.position, self.recorded = record.end, self.recorded + 1

    def _store_raw(self, record: Record, reason: str) -> bool:
        """The fallback row (request line, headers, raw bytes) for a record the database refused."""
        committer = self.committer
        assert committer is not None
        try:
            rows = raw_rows(unpack(record.payload), committer.salt, problem=f"{reason}; stored raw")
            rows.exchange["error_message"] = f"recorded raw: {reason}"
            committer.commit([rows], also=self._checkpoint(record.end, self.recorded + 1, self.failed))
        except Exception as exc:
            if not self._database_works():
                raise DatabaseUnavailable(describe(exc)) from exc
            return False
        return True

    def _fail(self, record: Record, reason: str) -> None:
        """Set one record aside and move past it (the database works, so the checkpoint can be written)."""
        set_aside(self.directory, record, reason)
        self._transaction(lambda: self._write(self._checkpoint(record.end, self.recorded, self.failed + 1)))
        self.position, self.failed = record.end, self.failed + 1
        self._announce(record, reason)

    def _announce(self, record: Record, reason: str) -> None:
        log.error("ccbridge: a journal record (segment %d, offset %d) %s; kept in %s", record.start.segment,
                  record.start.offset, reason, self.directory / FAILED_DIR)
        self.report("failed", reason)

    def _database_works(self) -> bool:
        """The probe: can the checkpoint row be written at all?"""
        try:
            self._write(self._checkpoint(self.position, self.recorded, self.failed))
        except Exception:
            return False
        return True
