"""What went wrong with a failed exchange, in words: its status, how it ended, and the upstream error's message.

Pure: the API answers an error as JSON (`{"type": "error", "error": {"message": ...}}`), or, once a stream
has begun, as an SSE `error` event; either is read from the stored response body.
"""

from __future__ import annotations

import json
from typing import Any

_MAX_JSON = 64 * 1024  # an error body is small; a longer one is an answer, not an error


def _message_of(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        found = error.get("message") or error.get("type")
        return str(found) if found else None
    if isinstance(error, str):
        return error
    return None


def upstream_message(body: bytes | None) -> str | None:
    """The `error.message` of an API error body (JSON, or the `error` event of an SSE stream), else None."""
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{") and len(body) <= _MAX_JSON:
        try:
            return _message_of(json.loads(text))
        except ValueError:
            return None
    for line in reversed(text.splitlines()):
        if line.startswith("data:") and '"error"' in line:
            try:
                found = _message_of(json.loads(line[5:]))
            except ValueError:
                continue
            if found:
                return found
    return None


def describe(status: int | None, error_kind: str | None, error_message: str | None,
             upstream: str | None) -> str:
    """One line for a failed turn: `429 · rate_limit: Too many requests`, the most specific text last."""
    head = " · ".join(p for p in (str(status) if status else "", error_kind or "") if p)
    detail = upstream or error_message or ""
    return f"{head}: {detail}" if head and detail else head or detail or "failed"
