"""A real PostgreSQL server for tests, in a temporary folder: started, stopped (fast) and started again.

    with PostgresServer.create() as server:
        url = server.url
        server.stop()   # pg_ctl stop -m fast: clients see the server go away
        server.start()  # the same data directory and port
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import stop_process

START_TIMEOUT = 30.0


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program on PATH or in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server on 127.0.0.1:<port>, trust authentication, user `ccbridge`, fsync off (a test database)."""

    def __init__(self, top: Path, server: str, pg_ctl: str | None, as_user: list[str]) -> None:
        self.top = top
        self.data = top / "data"
        self.server = server
        self.pg_ctl = pg_ctl
        self.as_user = as_user
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql+psycopg://ccbridge@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> PostgresServer:
        """initdb into a new temporary folder and start the server; raises FileNotFoundError without binaries."""
        initdb, server = postgres_bin("initdb"), postgres_bin("postgres")
        if not initdb or not server:
            raise FileNotFoundError("PostgreSQL server binaries not found: apt-get install postgresql (.ci/run does)")
        # not under pytest's temp root: that is private to its owner, and the server may run as another user
        top = Path(tempfile.mkdtemp(prefix="ccbridge-pg-"))
        data = top / "data"
        data.mkdir()
        as_user: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres user (setpriv execs)
            user = pwd.getpwnam("postgres")
            os.chown(top, user.pw_uid, user.pw_gid)
            os.chown(data, user.pw_uid, user.pw_gid)
            as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
        try:
            subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "ccbridge", "--no-sync"],
                           check=True, capture_output=True, timeout=120)
            instance = cls(top, server, postgres_bin("pg_ctl"), as_user)
            instance.start()
        except BaseException:
            shutil.rmtree(top, ignore_errors=True)
            raise
        return instance

    def start(self) -> None:
        """Start the server (again) on the same data directory and port; return once it takes connections."""
        with (self.top / "postgres.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*self.as_user, self.server, "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", str(self.data), "-c", "fsync=off"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.accepts():
                return
            if self.process.poll() is not None:
                raise RuntimeError(self.log())
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not start within {START_TIMEOUT:.0f} s:\n{self.log()}")

    def accepts(self) -> bool:
        """Whether the server answers a query now."""
        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user="ccbridge", dbname="postgres",
                                 connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """`pg_ctl stop -m fast` (SIGINT to the server when pg_ctl is missing): sessions end, nothing is lost."""
        if self.process is None:
            return
        if self.pg_ctl:
            subprocess.run([*self.as_user, self.pg_ctl, "stop", "-D", str(self.data), "-m", "fast", "-w"],
                           check=True, capture_output=True, timeout=60)
            self.process.wait(30)
        else:
            stop_process(self.process, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        self.process = None

    def log(self) -> str:
        path = self.top / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            if self.process is not None:
                stop_process(self.process, signal.SIGINT)
                self.process = None
        finally:
            shutil.rmtree(self.top, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def started_or_skip() -> PostgresServer:
    """A new server; without the binaries the test fails in CI (a missing server must not pass) and skips elsewhere."""
    try:
        return PostgresServer.create()
    except FileNotFoundError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
