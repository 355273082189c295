"""Stopping the processes a test started (by PID, politely first), and waiting for them, bounded."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable


def stop_process(popen: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:  # type: ignore[type-arg]
    """Send `sig` to this process only, wait up to `timeout`, then SIGKILL; return its exit code."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(10)
    return popen.returncode


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `check` until it holds; fail the test naming `what` when `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")
