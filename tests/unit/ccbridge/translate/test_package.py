"""`ccbridge.translate` names every translate function the rest of ccbridge imports."""

from __future__ import annotations

import ast
from pathlib import Path

import ccbridge
import ccbridge.translate

PACKAGE = Path(ccbridge.__file__).parent


def imported_from_translate() -> set[str]:
    """Names that modules outside translate/ import from ccbridge.translate or one of its modules."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "translate" in path.relative_to(PACKAGE).parts:
            continue
        package = ("ccbridge", *path.relative_to(PACKAGE).parent.parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and absolute(node, package).startswith("ccbridge.translate"):
                names.update(alias.name for alias in node.names)
    return names


def absolute(node: ast.ImportFrom, package: tuple[str, ...]) -> str:
    if not node.level:
        return node.module or ""
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def test_the_package_names_what_the_rest_of_ccbridge_uses() -> None:
    used = imported_from_translate()
    assert "to_openai_request" in used  # the scan sees the routing addon's import
    assert used <= set(ccbridge.translate.__all__)


def test_every_public_name_is_there() -> None:
    assert all(hasattr(ccbridge.translate, name) for name in ccbridge.translate.__all__)
