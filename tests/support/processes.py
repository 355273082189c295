"""Stopping the processes a test started: by PID, politely first."""

from __future__ import annotations

import contextlib
import signal
import subprocess


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
