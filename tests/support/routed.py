"""What the routing end-to-end tests share: a client the way Claude Code's SDK would be, and a scenario request."""

from __future__ import annotations

from typing import Any

import anthropic

API_KEY = "sk-ant-test"


def sdk(url: str) -> anthropic.Anthropic:
    """The `anthropic` SDK pointed at a proxy: no retries (a retry would hide a failed answer), 30 s timeout."""
    return anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=0, timeout=30)


def ask(name: str, model: str = "claude-routed-test") -> dict[str, Any]:
    """A request whose text names the scenario the mock provider plays."""
    return {"model": model, "max_tokens": 1000, "messages": [{"role": "user", "content": f"scenario: {name}"}]}
