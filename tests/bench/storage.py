"""Storage: a 200-turn conversation through the addon, the database's bytes against its last request."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.bench.proxy import Result, storage_growth


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="ccbridge-bench-") as tmp:
        return storage_growth(Path(tmp))
