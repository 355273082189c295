"""The real Claude Code captures in ../shared/fixtures/claude-code, as plain data."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("CCBRIDGE_FIXTURES", REPO.parent / "shared" / "fixtures" / "claude-code"))
VERSIONS = ("2.1.329", "2.1.197")


def fixture_files() -> list[Path]:
    files = sorted(FIXTURES.glob("*/*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no Claude Code captures under {FIXTURES} (set CCBRIDGE_FIXTURES)")
    return files


def captured_requests(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def all_requests() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.parent.name}/{p.stem}#{r['seq']}", r) for p in fixture_files() for r in captured_requests(p)]
