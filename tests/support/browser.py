"""Helpers for browser tests: a real viewer server (uvicorn subprocess) and Debian's chromium via Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import stop_process

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """Debian's chromium; fail in CI (it must be installed there), skip elsewhere."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found:
        return found
    message = "chromium is not installed: `sudo apt-get install -y chromium` (Debian/Ubuntu)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def viewer_server(db_url: str, workdir: Path, *extra: str) -> Iterator[str]:
    """`python -m viewer` on 127.0.0.1:<free port>; stopped by its PID afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCBRIDGE_")}
    env["PYTHONPATH"] = f"{REPO}:{REPO / 'addons'}"
    log = (workdir / "viewer.log").open("wb")
    for _attempt in range(3):  # the free port can be taken between our probe and uvicorn's bind
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "viewer", "--host", "127.0.0.1", "--port", str(port),
                                    "--db", db_url, *extra], cwd=workdir, env=env, stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        if process.poll() is None:
            try:
                yield url
            finally:
                stop_process(process)
                log.close()
            return
    log.close()
    raise RuntimeError(f"the viewer did not start:\n{(workdir / 'viewer.log').read_text(errors='replace')}")
