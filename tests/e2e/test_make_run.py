"""`make run`, the README's first command: proxy and viewer start, a request is recorded and shown, and
Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops both with nothing lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.mock_anthropic import MockAnthropic

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("make run did not come up")


def group_gone(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_make_run_records_shows_and_stops_cleanly_on_ctrl_c(tmp_path: Path):
    proxy_port, viewer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCBRIDGE_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # the default SQLite database goes here
    log = (tmp_path / "make-run.log").open("wb")
    with MockAnthropic() as mock:
        make = subprocess.Popen(
            ["make", "-C", str(REPO), "run", f"PROXY_PORT={proxy_port}", f"VIEWER_PORT={viewer_port}",
             f"UPSTREAM={mock.url}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
        try:
            wait_until(lambda: httpx.get(f"http://127.0.0.1:{viewer_port}/health", timeout=2).status_code == 200)
            body = {"model": "claude-opus-5-5", "max_tokens": 8, "stream": True,
                    "messages": [{"role": "user", "content": "hello through make run"}]}
            wait_until(lambda: httpx.post(f"http://127.0.0.1:{proxy_port}/v1/messages", json=body, timeout=10,
                                          headers={"x-claude-code-session-id": "make-run-session"}).is_success)
            wait_until(lambda: "make-run-session" in httpx.get(
                f"http://127.0.0.1:{viewer_port}/api/sessions", timeout=5).text, seconds=20)
        finally:
            os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
            try:
                make.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait(10)
            log.close()
    output = (tmp_path / "make-run.log").read_text(errors="replace")
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:" in output
    # one request, unless a client timeout on a loaded machine made wait_until send it again: all are recorded
    assert f"ccbridge: {len(mock.requests)} exchanges recorded, 0 failed" in output, output[-3000:]
    assert group_gone(make.pid, seconds=20), "a process of `make run` outlived it"
    assert (tmp_path / "data" / "ccbridge" / "ccbridge.db").is_file()
