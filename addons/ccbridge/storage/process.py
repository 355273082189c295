"""The proxy's storage: each exchange appended to the journal in the hook, written by a child process.

The hook's cost is pickling the exchange's small fields and one `writev()` of them and of its bodies, not
copied, to an already open file (`storage/codec.py`, `storage/journal.py`): tens of microseconds on the
event loop for a 50 KB request (`make bench`), and the exchange is on disk before anything can fail on it,
so a proxy killed with SIGKILL loses only the exchanges still in flight. An in-memory queue to a thread would lose its
contents in that case and grow without bound when the database stalls; here what waits, waits on disk.

The database work runs in a child process because decomposing, hashing and inserting cost up to 1.5 ms of
CPU per request: in a thread of mitmdump it would hold the GIL while the event loop waits (~40 % added
latency in `make bench`); in a process it runs on the other core, at a lower priority. The child reads the
journal itself (`storage/drain.py`), so nothing is pickled through a pipe; the pipe only carries a few
control messages.

A supervisor thread restarts the child when it dies; the new one continues from the committed position.
At stop the child gets `stop_seconds` to catch up (mitmdump must stop within 15 s whatever the database
does); what it has not written stays in the journal, is named in the closing line and is written at the
next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..captured import CapturedExchange
from .codec import parts
from .db import open_engine
from .drain import Backoff, DatabaseUnavailable, Drain, read_status
from .journal import SEGMENT_BYTES, Appender, Position, Reader

log = logging.getLogger("ccbridge.storage")
STARTUP_TIMEOUT = 60.0
ORPHAN_SECONDS = 10.0  # a child whose proxy died writes what it can in this time, then exits


@dataclass
class _Child:
    process: Any
    conn: Any

    @classmethod
    def spawn(cls, url: str, directory: Path, batch_size: int, batch_seconds: float, run_start: Position,
              timeout: float = STARTUP_TIMEOUT) -> _Child:
        """Start a writer process and wait until it runs (the database may still be unavailable)."""
        context = multiprocessing.get_context("spawn")  # fork is unsafe in a process with threads and a loop
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(url, str(directory), batch_size, batch_seconds, run_start,
                                                      theirs, os.getpid()), name="ccbridge-writer", daemon=True)
        process.start()
        theirs.close()
        child = cls(process, ours)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(EOFError, OSError):  # it died on the way
            while time.monotonic() < deadline and process.is_alive():
                if ours.poll(0.2) and ours.recv()[0] == "ready":
                    return child
        process.kill()
        process.join(5)
        raise RuntimeError("storage writer did not start")


class WriterProcess:
    """Hooks call `submit`; `close` at stop. Counts of this run: written, failed (with reasons), pending."""

    def __init__(self, url: str, journal_dir: Path, *, batch_size: int = 200, batch_seconds: float = 0.25,
                 stop_seconds: float = 8.0, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = journal_dir
        self.stop_seconds = stop_seconds
        self.journal = Appender(journal_dir, segment_bytes)
        self._spawn_args = (url, journal_dir, batch_size, batch_seconds, self.journal.position)
        try:
            self.child = _Child.spawn(*self._spawn_args)
        except BaseException:
            self.journal.close()
            raise
        self.written = 0
        self.failed = 0
        self.pending = 0
        self.lost = 0  # could not even be appended to the journal (its disk failed)
        self.restarts = 0
        self.reasons: Counter[str] = Counter()
        self._baseline: tuple[int, int] | None = None
        self._latest: tuple[int, int] | None = None
        self._append_errors: set[str] = set()
        self._lock = threading.Lock()  # the supervisor and close() both read the child's messages
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="ccbridge-writer-supervisor", daemon=True)
        self._supervisor.start()

    def submit(self, captured: CapturedExchange) -> None:
        """Called from mitmproxy hooks: append to the journal (microseconds, never waits for the database)."""
        try:
            self.journal.append(*parts(captured))
        except Exception as exc:
            self.lost += 1
            kind = type(exc).__name__
            if kind not in self._append_errors:
                self._append_errors.add(kind)
                log.error("ccbridge: cannot append to the journal %s (%r): flow %s is not recorded",
                          self.directory, exc, captured.flow_id)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is committed (tests and benchmarks)."""
        target = self.journal.position
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            position = self._status_position()
            if position is not None and position >= target and Reader(self.directory).backlog(position).records == 0:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Let the child catch up for at most `stop_seconds`, then stop it; what is left stays in the journal."""
        self._stopping.set()
        self._supervisor.join(5)
        self.journal.rotate()  # seal: the child can finish the segment and delete it
        deadline = time.monotonic() + self.stop_seconds
        # a child killed now (or just before, not yet replaced) is replaced while there is time
        while not self._finish(self.child, deadline) and deadline - time.monotonic() > 3:
            log.error("ccbridge: the storage writer process stopped (exit code %s); starting a new one to finish",
                      self.child.process.exitcode)
            try:
                self.child = _Child.spawn(*self._spawn_args, timeout=deadline - time.monotonic() - 2)
            except Exception as exc:
                log.error("ccbridge: could not start a storage writer to finish: %r", exc)
                break
        child = self.child
        child.process.join(max(1.0, deadline - time.monotonic()))  # exiting takes a moment after "closed"
        if child.process.is_alive():
            log.warning("ccbridge: the storage writer did not finish within %.0f s; stopping it", self.stop_seconds)
            child.process.kill()
            child.process.join(5)
        with self._lock:
            self._receive(child, 0)
        self._count()
        self.journal.close()

    def _finish(self, child: _Child, deadline: float) -> bool:
        """Ask the child to catch up and exit; False when it is (or dies) without saying it has finished."""
        if not child.process.is_alive():
            return False
        with contextlib.suppress(OSError):
            child.conn.send(("finish", deadline - time.monotonic() - 1))  # a second to report and exit
        with self._lock:
            while time.monotonic() < deadline:
                if self._receive(child, min(0.2, max(0.0, deadline - time.monotonic()))) == "closed":
                    return True
                if not child.process.is_alive():
                    return self._receive(child, 0) == "closed"
        return True  # out of time: it is stopped below

    def summary(self) -> str:
        """The closing line's counts."""
        line = f"{self.written} exchanges recorded, {self.failed} failed, {self.pending} pending in the journal"
        if self.pending:
            line += f" {self.directory} (written at the next start)"
        if self.lost:
            line += f", {self.lost} lost (the journal could not be written)"
        if self.reasons:
            line += "; failed: " + "; ".join(f"{n} x {reason}" for reason, n in self.reasons.most_common(5))
        return line

    def _count(self) -> None:
        status = read_status(self.directory)
        latest = self._latest
        if status.get("recorded") is not None and (latest is None or status["recorded"] >= latest[0]):
            latest = (status["recorded"], status["failed"])
        if latest is not None and self._baseline is not None:
            self.written, self.failed = latest[0] - self._baseline[0], latest[1] - self._baseline[1]
        position = self._status_position()
        self.pending = Reader(self.directory).backlog(position or Position(0, 0)).records

    def _status_position(self) -> Position | None:
        found = read_status(self.directory).get("position")
        return Position(*found) if found else None

    def _receive(self, child: _Child, timeout: float) -> str | None:
        """Handle the child's messages; returns the kind of the last one."""
        kind = None
        try:
            while child.conn.poll(timeout):
                message = child.conn.recv()
                kind = message[0]
                if kind == "connected" and self._baseline is None:
                    self._baseline = (message[1], message[2])
                elif kind == "failed":
                    self.reasons[message[1]] += 1
                elif kind == "closed":
                    self._latest = (message[1], message[2])
                timeout = 0
        except (EOFError, OSError):
            pass
        return kind

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            child = self.child
            with self._lock:
                self._receive(child, 0)
            if child.process.is_alive():
                self._stopping.wait(0.5)
                continue
            with self._lock:
                self._receive(child, 0)
            log.error("ccbridge: the storage writer process stopped (exit code %s); starting a new one, which "
                      "continues from the journal", child.process.exitcode)
            child.conn.close()
            try:
                self.child = _Child.spawn(*self._spawn_args)
                self.restarts += 1
                backoff = 1.0
            except Exception as exc:
                log.error("ccbridge: could not start a new storage writer: %r", exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)


def serve(url: str, directory: str, batch_size: int, batch_seconds: float, run_start: Position, conn: Any,
          parent: int) -> None:
    """The child: write the journal to the database until told to finish (or the proxy is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(10)  # background work: the proxy and Claude Code come first when the cores are busy
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")

    def report(*message: Any) -> None:
        with contextlib.suppress(OSError):
            conn.send(message)

    report("ready")
    journal = Path(directory)
    # one writer per journal: a replacement waits here while an orphaned predecessor finishes
    lock = os.open(journal / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline: float | None = None
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            deadline = _listen(conn, parent, 0.2, deadline)
            if deadline is not None and time.monotonic() > deadline:
                return
    drain = Drain(lambda: open_engine(url, busy_seconds=5.0), journal, batch_size=batch_size, run_start=run_start,
                  report=report)
    backoff = Backoff()
    waiting = 0
    while deadline is None or time.monotonic() < deadline:
        if drain.outage.since is not None and drain.committer is not None:
            waiting = drain.pending()  # for the line that says the outage is over
        try:
            moved = drain.step()
        except DatabaseUnavailable as exc:
            drain.outage.begin(exc)
            drain.write_status()
            deadline = _listen(conn, parent, backoff.next(), deadline)
            continue
        if drain.outage.since is not None:
            drain.outage.end(waiting)
            drain.write_status()
        backoff.reset()
        if not moved:
            if deadline is not None:
                break  # caught up
            deadline = _listen(conn, parent, batch_seconds, deadline)
    drain.write_status()
    report("closed", drain.recorded, drain.failed)


def _listen(conn: Any, parent: int, seconds: float, deadline: float | None) -> float | None:
    """Wait up to `seconds` (less near the deadline) for a message; returns the deadline to stop by."""
    if deadline is not None:
        seconds = max(0.0, min(seconds, deadline - time.monotonic()))
    try:
        if conn.poll(seconds):
            message = conn.recv()
            if message[0] == "finish":
                finish = time.monotonic() + message[1]
                return finish if deadline is None else min(deadline, finish)
    except (EOFError, OSError):
        time.sleep(seconds)  # the proxy is gone: the pipe no longer waits
    if os.getppid() != parent and deadline is None:
        return time.monotonic() + ORPHAN_SECONDS
    return deadline
