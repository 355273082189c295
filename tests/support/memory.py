"""The resident memory of a process and all its descendants, sampled from /proc in a background thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/<pid>/task/<tid>/children (Linux)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # it ended between the two reads
    return found


def resident_bytes(pid: int) -> int:
    """Resident set size of one process (0 when it has ended)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def tree_resident_bytes(pid: int) -> dict[int, int]:
    """The resident bytes of each process of `pid`'s tree."""
    return {p: resident_bytes(p) for p in descendants(pid)}


class TreePeak:
    """Samples the summed RSS of `pid`'s process tree every `interval` seconds while the block runs."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.peak_parts: dict[int, int] = {}  # each process's share at the peak
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-peak", daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            parts = tree_resident_bytes(self.pid)
            if sum(parts.values()) > self.peak:
                self.peak, self.peak_parts = sum(parts.values()), parts
            self.samples += 1
            self._stop.wait(self.interval)
