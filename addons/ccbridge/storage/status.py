"""What `ccbridge status` prints about a journal, for a running or a stopped proxy (read from files only)."""

from __future__ import annotations

import time
from pathlib import Path

from .drain import failure_reasons, read_status
from .journal import START, Position, Reader, is_appending, segments


def age(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 12 min, 3.5 h, 2.0 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def journal_report(directory: Path, now: float | None = None) -> list[str]:
    """The journal's size, what is pending (and since when), and the writer's counts as it last wrote them."""
    now = time.time() if now is None else now
    if not directory.is_dir():
        return [f"journal: {directory} (none yet: no proxy has run with it)"]
    status = read_status(directory)
    position = Position(*status["position"]) if status.get("position") else START
    reader = Reader(directory)
    backlog = reader.backlog(position)
    lines = [
        f"journal: {directory}",
        f"proxy: {'running' if is_appending(directory) else 'not running'}",
        f"journal size: {reader.size() / 1024 / 1024:.1f} MiB in {len(segments(directory))} segment file(s)",
        f"pending: {backlog.records} exchanges" + (
            f" (oldest {age(now - backlog.oldest)} ago)" if backlog.oldest is not None else ""),
    ]
    if status:
        lines.append(f"recorded: {status['recorded']}, failed: {status['failed']} (since the journal was created; "
                     f"last written {age(now - status['updated_at'])} ago to {status.get('database') or '?'})")
        if status.get("outage"):
            outage = status["outage"]
            lines.append(f"database unavailable since {age(now - outage['since'])} ago: {outage['error']}")
    else:
        lines.append("recorded: unknown (the writer has not reached the database yet)")
    for reason, count in failure_reasons(directory).items():
        lines.append(f"  failed: {count} x {reason} (kept in {directory / 'failed'})")
    return lines
