"""The viewer and the CLI reach storage only through its read API, maintenance (the CLI), models and db."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def storage_modules(path: Path, package: str) -> set[str]:
    """The ccbridge.storage submodules that `path` (a module of `package`) imports."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join([*parts[: len(parts) - node.level + 1], node.module or ""]) if node.level else node.module
            names += [f"{base}.{alias.name}" for alias in node.names]
    return {n.split(".")[2] for n in names if n.startswith("ccbridge.storage.")}


def test_the_viewer_uses_only_the_read_api_models_and_db() -> None:
    for path in (REPO / "viewer").rglob("*.py"):
        used = storage_modules(path, "viewer")
        assert used <= {"read", "models", "db"}, f"{path.relative_to(REPO)} imports storage.{used}"


def test_the_cli_uses_only_maintenance_and_db() -> None:
    used = storage_modules(REPO / "addons" / "ccbridge" / "cli.py", "ccbridge")
    assert used == {"maintenance", "db"}
