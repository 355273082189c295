"""The storage writer in its own process, for the proxy.

Decomposing, hashing and inserting a Claude Code request costs up to a millisecond and a half of CPU. In a
thread of mitmdump that work holds the GIL while the proxy's event loop waits for it, which showed up as
~40 % added latency per request in `make bench`. In a separate process it runs on the other core: hooks only
put the captured exchange on a queue (pickling happens in the queue's feeder thread).

The child runs at a lower CPU priority and ignores SIGINT and SIGTERM: the proxy's `done` hook sends it
the stop message once mitmproxy has finished, and it drains the queue before it exits. If the proxy dies
without that, the child notices that its parent is gone, writes what it has and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..captured import CapturedExchange

log = logging.getLogger("ccbridge.storage")
STARTUP_TIMEOUT = 60.0
HANDOFF_SECONDS = 0.05


@dataclass
class _Child:
    process: Any
    queue: Any
    replies: Any

    @classmethod
    def spawn(cls, url: str, batch_size: int, batch_seconds: float) -> _Child:
        """Start a writer process and wait until its storage is open."""
        context = multiprocessing.get_context("spawn")  # fork is unsafe in a process with threads and a loop
        inbox, replies = context.Queue(), context.Queue()
        process = context.Process(target=serve, args=(url, batch_size, batch_seconds, inbox, replies, os.getpid()),
                                  name="ccbridge-writer", daemon=True)
        process.start()
        child = cls(process, inbox, replies)
        reply = child.reply("ready", STARTUP_TIMEOUT)
        if reply is None or len(reply) > 1:
            process.kill()
            raise RuntimeError(f"storage writer did not start: {reply[1] if reply else 'no answer'}")
        return child

    def reply(self, kind: str, timeout: float, token: int | None = None) -> tuple[Any, ...] | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = self.replies.get(timeout=min(left, 1.0))
            except queue.Empty:
                if not self.process.is_alive():
                    return None
                continue
            if reply[0] == "failed":
                return reply
            if reply[0] == kind and (token is None or reply[1] == token):
                return reply
        return None


class WriterProcess:
    """Same interface as `Writer` (submit, flush, close, written, failed), backed by a child process.

    If the child dies (killed, out of memory), the next hand-over notices, logs it and starts a new one in
    a thread; what is captured meanwhile waits and is handed to the new child.
    """

    def __init__(self, url: str, *, batch_size: int = 200, batch_seconds: float = 0.25) -> None:
        self._spawn_args = (url, batch_size, batch_seconds)
        self.child = _Child.spawn(*self._spawn_args)
        self.written = 0
        self.failed = 0
        self.restarts = 0
        self._tokens = itertools.count(1)
        self._pending: list[CapturedExchange] = []
        self._handoff: asyncio.TimerHandle | None = None
        self._restarting: threading.Thread | None = None

    def submit(self, captured: CapturedExchange) -> None:
        # Handed over in batches: one wake-up of the queue's feeder thread (which pickles while holding the
        # GIL) per HANDOFF_SECONDS instead of one per exchange, so the proxy's loop is interrupted less.
        self._pending.append(captured)
        self._schedule()

    def _schedule(self) -> None:
        if self._handoff is None:
            try:
                self._handoff = asyncio.get_running_loop().call_later(HANDOFF_SECONDS, self._hand_over)
            except RuntimeError:  # no loop (tests, tools): hand over at once
                self._hand_over()

    def _hand_over(self) -> None:
        self._handoff = None
        if self._restarting is not None:
            if self._restarting.is_alive():
                self._schedule()  # keep what arrives until the new child is there
                return
            self._restarting = None
        if not self.child.process.is_alive():
            self._restart()
            self._schedule()
            return
        pending, self._pending = self._pending, []
        if pending:
            self.child.queue.put_nowait(pending)

    def _restart(self) -> None:
        log.error("ccbridge: the storage writer process stopped (exit code %s); starting a new one. Exchanges "
                  "handed to it shortly before may be lost; those captured from now on are kept.",
                  self.child.process.exitcode)
        self.restarts += 1

        def spawn() -> None:
            try:
                self.child = _Child.spawn(*self._spawn_args)
            except Exception as exc:
                log.error("ccbridge: could not start a new storage writer: %r", exc)

        self._restarting = threading.Thread(target=spawn, name="ccbridge-writer-restart", daemon=True)
        self._restarting.start()

    def flush(self, timeout: float = 30.0) -> bool:
        self._wait_for_restart(timeout)
        self._hand_over()
        token = next(self._tokens)
        self.child.queue.put(("flush", token))
        return self.child.reply("flushed", timeout, token) is not None

    def close(self, timeout: float = 120.0) -> None:
        if self._handoff is not None:
            self._handoff.cancel()
        self._wait_for_restart(STARTUP_TIMEOUT)
        self._hand_over()
        child = self.child
        child.queue.put(None)
        reply = child.reply("closed", timeout)
        if reply is not None:
            self.written, self.failed = self.written + reply[1], self.failed + reply[2]
        else:
            log.error("ccbridge: storage writer did not finish within %.0f s", timeout)
        child.process.join(10)
        if child.process.is_alive():
            child.process.kill()
        child.queue.close()
        child.replies.close()

    def _wait_for_restart(self, timeout: float) -> None:
        if self._restarting is not None:
            self._restarting.join(timeout)
            self._restarting = None
        if not self.child.process.is_alive() and self._pending:
            self._restart()
            self._restarting.join(timeout)  # type: ignore[union-attr]
            self._restarting = None


def serve(url: str, batch_size: int, batch_seconds: float, inbox: Any, replies: Any, parent: int) -> None:
    """The child: forward captured exchanges to a `Writer` until told to stop (or the parent is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(10)  # background work: the proxy and Claude Code come first when the cores are busy
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    from .db import open_engine
    from .writer import Writer

    try:
        writer = Writer(open_engine(url), batch_size=batch_size, batch_seconds=batch_seconds)
    except Exception as exc:
        replies.put(("failed", repr(exc)))
        return
    replies.put(("ready",))
    for _ in itertools.count():
        try:
            item = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                break
            continue
        if item is None:
            break
        if isinstance(item, tuple):
            writer.flush()
            replies.put(("flushed", item[1]))
        else:
            for captured in item:
                writer.submit(captured)
    writer.close()
    replies.put(("closed", writer.written, writer.failed))
