"""The import rules that ARCHITECTURE.md promises, checked on the source (every import, also inside functions)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "addons" / "ccbridge"
VIEWER = ROOT / "viewer"

# Pure modules: they know nothing of the proxy, the storage or the viewer.
LEAVES = ("ccbridge.translate", "ccbridge.sse", "ccbridge.identity", "ccbridge.redact", "ccbridge.headers",
          "ccbridge.claude_code", "ccbridge.errors", "ccbridge.prices")
ABOVE_LEAVES = ("ccbridge.routing", "ccbridge.storage", "ccbridge.capture", "ccbridge.runtime", "ccbridge.cli",
                "ccbridge.settings", "viewer")
# What the viewer may take from the addon package: the storage read API, the models and the settings, and the
# price lookup (pure; the CLI and alternate answers price with it too).
VIEWER_MAY_IMPORT = ("ccbridge.storage.read", "ccbridge.storage.models", "ccbridge.settings", "ccbridge.errors",
                     "ccbridge.claude_code", "ccbridge.prices")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (absolute)
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    base = ADDON.parent if path.is_relative_to(ADDON) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[Import]:
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                # `from pkg import module` imports the module pkg.module when it is one
                for alias in child.names:
                    candidate = f"{target}.{alias.name}"
                    found.append(Import(module, candidate if is_module(candidate) else target, child.lineno,
                                        in_function))
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def is_module(dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    base = ADDON if head == "ccbridge" else ROOT / head if head == "viewer" else None
    if base is None:
        return False
    path = base.joinpath(*rest.split(".")) if rest else base
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


ALL_IMPORTS = [imp for folder in (ADDON, VIEWER) for path in sorted(folder.rglob("*.py")) for imp in imports_of(path)]


def test_the_scan_sees_the_code():
    assert any(imp.module == "viewer.app" for imp in ALL_IMPORTS)
    assert any(imp.target.startswith("ccbridge.translate.") for imp in ALL_IMPORTS)


def test_pure_modules_import_nothing_above_them():
    wrong = [imp for imp in ALL_IMPORTS if within(imp.module, LEAVES) and within(imp.target, ABOVE_LEAVES)]
    assert wrong == []


def test_the_addon_never_imports_the_viewer():
    wrong = [imp for imp in ALL_IMPORTS if within(imp.module, ("ccbridge",)) and within(imp.target, ("viewer",))]
    assert wrong == []


def test_the_viewer_takes_only_the_read_api_models_and_settings():
    wrong = [imp for imp in ALL_IMPORTS if within(imp.module, ("viewer",)) and within(imp.target, ("ccbridge",))
             and not within(imp.target, VIEWER_MAY_IMPORT)]
    assert wrong == []


def test_the_cli_reaches_storage_only_through_maintenance_the_engine_and_the_journal_status():
    used = {imp.target for imp in ALL_IMPORTS
            if imp.module == "ccbridge.cli" and within(imp.target, ("ccbridge.storage",))}
    assert used <= {"ccbridge.storage.maintenance", "ccbridge.storage.db", "ccbridge.storage.read",
                    "ccbridge.storage.status", "ccbridge.storage.alternates"}


def test_no_function_level_import_of_our_own_code():
    """A first-party import inside a function is how a layer rule gets dodged; none are left."""
    wrong = [imp for imp in ALL_IMPORTS if imp.in_function and within(imp.target, ("ccbridge", "viewer"))]
    assert wrong == []


@pytest.mark.parametrize("rule", [LEAVES, VIEWER_MAY_IMPORT])
def test_every_named_module_exists(rule):
    assert all(is_module(name) for name in rule), [name for name in rule if not is_module(name)]


def test_architecture_md_names_every_module_the_rules_name():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    names = [name.removeprefix("ccbridge.") for name in (*LEAVES, *VIEWER_MAY_IMPORT, *ABOVE_LEAVES)]
    missing = [name for name in names
               if not any(f"`{form}" in text for form in (name, f"{name}.py", f"{name}/", name.replace(".", "/")))]
    assert missing == []
