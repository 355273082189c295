"""Shared fixtures: the mock Anthropic server and a real mitmdump running the ccbridge addon in front of it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.claude_cli import claude_bin
from tests.support.mock_anthropic import MockAnthropic
from tests.support.proxy import ProxyProcess, mitmdump_bin, start_proxy


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(path: Path, hint: str) -> None:
    """Fail in CI (a missing tool must not turn into a green run), skip elsewhere."""
    if path.is_file() and os.access(path, os.X_OK):
        return
    message = f"{path} is missing: {hint}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def mock_anthropic() -> Iterator[MockAnthropic]:
    with MockAnthropic() as mock:
        yield mock


@pytest.fixture
def proxy(mock_anthropic: MockAnthropic, tmp_path: Path) -> Iterator[ProxyProcess]:
    """mitmdump + addons/bridge.py in reverse mode to the mock; stopped (SIGTERM) after the test."""
    require_tool(mitmdump_bin(), "run `make venv` (mitmproxy is installed into the venv)")
    with start_proxy(mock_anthropic.url, tmp_path) as running:
        yield running


@pytest.fixture
def claude() -> Path:
    """The Claude Code CLI; skips the test (fails it in CI) before anything starts when it is missing."""
    return claude_bin()
