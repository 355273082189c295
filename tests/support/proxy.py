"""Start a real `mitmdump` (with or without the ccbridge addon) as a subprocess, for end-to-end tests.

    with start_proxy(mock.url, tmp_path) as proxy:
        httpx.post(f"{proxy.url}/v1/messages", ...)
    # stopped with SIGTERM: the addon has flushed every pending write; read proxy.db_url
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange
from tests.support.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
ADDON = REPO_ROOT / "addons" / "bridge.py"
STARTUP_TIMEOUT = 60.0
_LISTENING = re.compile(rb"listening at (?:127\.0\.0\.1|\[?::1\]?|localhost):(\d+)")


def mitmdump_bin() -> Path:
    """mitmdump next to the running interpreter (the project's venv)."""
    return Path(sys.executable).parent / "mitmdump"


@dataclass(eq=False)  # compared and hashed by identity
class ProxyProcess:
    """A running mitmdump. `stop()` is idempotent; the log file survives for failure messages."""

    popen: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path
    db_url: str | None
    returncode: int | None = field(default=None, init=False)
    journal_dir: Path | None = field(default=None, init=False)
    _engine: Engine | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` to this mitmdump only, wait up to `timeout`, then SIGKILL; return its exit code."""
        self.returncode = stop_process(self.popen, sig, timeout)
        _started.discard(self)
        return self.returncode

    def db(self) -> Session:
        """A SQLModel session on the proxy's storage (read it after `stop()` to see every write)."""
        assert self.db_url, "this mitmdump runs without the ccbridge addon"
        if self._engine is None:
            self._engine = open_engine(self.db_url, create=False)  # the proxy made the tables at start
        return Session(self._engine)

    def stored_count(self) -> int:
        """How many exchanges the database holds now (the writer may still be draining the journal)."""
        with self.db() as db:
            return db.exec(select(func.count()).select_from(Exchange)).one()

    def exchanges(self) -> list[Exchange]:
        """Every stored exchange in the order they started (stop the proxy first so all writes are flushed)."""
        with self.db() as db:
            return list(db.exec(select(Exchange).order_by(Exchange.started_at, Exchange.id)).all())

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        # pytest shows this only when the test failed
        print(f"--- mitmdump log ({self.log_path}), exit code {self.returncode} ---\n{self.log_tail()}")


_started: set[ProxyProcess] = set()  # running; removed again by stop()


@atexit.register
def _stop_leftovers() -> None:
    """A caller that never stopped its mitmdump (an exception in a script, Ctrl-C) must not leave it running."""
    for proxy in list(_started):
        proxy.stop(timeout=5)


def _launch(args: Sequence[str], workdir: Path, db_url: str | None,
            extra_env: Mapping[str, str] | None = None) -> ProxyProcess:
    log_path = workdir / "mitmdump.log"
    with log_path.open("wb") as log:
        # cwd and env: no ./config.yaml or $CCBRIDGE_* of the developer's may leak into a test
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCBRIDGE_")}
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=workdir, env={**env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"})
    proxy = ProxyProcess(popen, 0, workdir, log_path, db_url)
    _started.add(proxy)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            log_bytes = log_path.read_bytes()
            if b"error in script" in log_bytes or b"Error logged during startup" in log_bytes:
                raise RuntimeError(f"mitmdump failed to start:\n{proxy.log_tail()}")
            found = _LISTENING.search(log_bytes)
            if found:
                proxy.port = int(found.group(1))
                return proxy
            if popen.poll() is not None:
                raise RuntimeError(f"mitmdump exited with {popen.returncode} during startup:\n{proxy.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"mitmdump did not report its port within {STARTUP_TIMEOUT:.0f} s:\n{proxy.log_tail()}")
    except BaseException:
        proxy.stop(signal.SIGKILL, timeout=5)
        raise


def _base_args(upstream_url: str, workdir: Path) -> list[str]:
    return [str(mitmdump_bin()), "--mode", f"reverse:{upstream_url}", "--listen-host", "127.0.0.1",
            "--listen-port", "0", "--set", f"confdir={workdir / 'confdir'}", "--set", "flow_detail=0"]


def start_proxy(upstream_url: str, tmp_path: Path, config: dict[str, Any] | None = None,
                extra_args: Sequence[str] = (), storage_url: str | None = None,
                storage_url_from_env: bool = False, journal_dir: Path | None = None) -> ProxyProcess:
    """mitmdump with addons/bridge.py in reverse mode to `upstream_url`, storing into SQLite under tmp_path.

    The storage URL is given as `--set ccbridge_storage_url`, or as $CCBRIDGE_STORAGE_URL only. Each proxy has
    its own journal unless `journal_dir` is given (to start again on the same one).
    """
    workdir = Path(tempfile.mkdtemp(prefix="proxy-", dir=tmp_path))
    db_url = storage_url or f"sqlite:///{workdir / 'cc.db'}"
    journal_dir = journal_dir or workdir / "journal"
    args = [*_base_args(upstream_url, workdir), "-s", str(ADDON), "--set", f"ccbridge_journal_dir={journal_dir}"]
    env = {"CCBRIDGE_STORAGE_URL": db_url} if storage_url_from_env else {}
    if not storage_url_from_env:
        # once only: mitmproxy silently drops a script whose option is given twice
        args += ["--set", f"ccbridge_storage_url={db_url}"]
    if config is not None:
        import yaml

        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        args += ["--set", f"ccbridge_config={config_path}"]
    proxy = _launch([*args, *extra_args], workdir, db_url, env)
    proxy.journal_dir = journal_dir
    return proxy


def start_bare_mitmdump(upstream_url: str, tmp_path: Path, extra_args: Sequence[str] = ()) -> ProxyProcess:
    """mitmdump in the same reverse mode without any addon (the baseline for overhead measurements)."""
    workdir = Path(tempfile.mkdtemp(prefix="mitmdump-", dir=tmp_path))
    return _launch([*_base_args(upstream_url, workdir), *extra_args], workdir, None)


def writer_children(proxy_pid: int) -> list[int]:
    """PIDs of the proxy's storage writer processes (multiprocessing children running spawn_main)."""
    found = []
    for task in Path(f"/proc/{proxy_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(pid))
    return found


def header(headers: list[list[str]] | list[tuple[str, str]] | None, name: str) -> str | None:
    """The first value of header `name` (any case) in a stored or recorded header list."""
    return next((value for key, value in headers or () if key.lower() == name.lower()), None)
