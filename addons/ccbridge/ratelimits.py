"""Parse the `anthropic-ratelimit-unified-*` response headers into windows, generically by claim and field.

`anthropic-ratelimit-unified-5h-utilization: 0.42` becomes `claims["5h"]["utilization"] = 0.42`; headers
without a claim (`-status`, `-reset`, `-representative-claim`, ...) are summary fields. Nothing is hard-coded
about which claims exist, so a new window shows up without a code change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PREFIX = "anthropic-ratelimit-unified-"
FIELDS = ("surpassed-threshold", "utilization", "status", "reset")  # longest first: suffix match
NUMERIC = {"utilization", "reset", "surpassed-threshold", "fallback-percentage"}


def _value(field: str, raw: str) -> Any:
    if field in NUMERIC:
        try:
            number = float(raw)
        except ValueError:
            return raw
        return int(number) if field == "reset" and number.is_integer() else number
    return raw


def parse_unified(headers: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
    """{"claims": {claim: {field: value}}, <summary field>: value} or None when no such header is present."""
    summary: dict[str, Any] = {}
    claims: dict[str, dict[str, Any]] = {}
    for name, raw in headers:
        name = name.lower()
        if not name.startswith(PREFIX):
            continue
        rest = name[len(PREFIX) :]
        for field in FIELDS:
            if rest.endswith("-" + field):
                claim = rest[: -len(field) - 1]
                claims.setdefault(claim, {})[field.replace("-", "_")] = _value(field, raw.strip())
                break
        else:
            summary[rest.replace("-", "_")] = _value(rest, raw.strip())
    if not summary and not claims:
        return None
    return {**summary, "claims": claims}
