"""Writing Anthropic server-sent events: `event: <name>` plus one compact JSON `data:` line per frame."""

from __future__ import annotations

import json
from typing import Any


def frame(event: str, data: dict[str, Any]) -> bytes:
    """One SSE frame; the Anthropic SDK dispatches on the `event:` line, so it is never omitted."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()
