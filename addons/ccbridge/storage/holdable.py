"""Make a built row fit every database we write to, and say what had to change.

Traffic can carry values that SQLite or PostgreSQL refuse at insert time: integers beyond 64 bits, NUL in
text (PostgreSQL), lone UTF-16 surrogates from invalid UTF-8 or from a `\\ud800` JSON escape (neither
database stores them), NaN in JSON (PostgreSQL), text longer than its column (PostgreSQL). Such a value is
replaced here, when the row is built, and a note says so; the exchange's raw bytes stay as they were sent.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from .models import Exchange, table_of

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NUL_SIGN = "\u2400"  # SYMBOL FOR NULL: visible where a NUL was
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # how a lone surrogate can enter through JSON text
_LENGTHS = {c.name: length for c in table_of(Exchange).columns if (length := getattr(c.type, "length", None))}


def has_surrogate(text: str) -> bool:
    # isascii() is a flag CPython keeps: most text skips the scan, which costs seconds on a bomb's 32 MB
    return not text.isascii() and _SURROGATE.search(text) is not None


def fit_text(value: str) -> tuple[str, list[str]]:
    """`value` without NUL and lone surrogates, and what was replaced."""
    changes = []
    if "\x00" in value:
        value = value.replace("\x00", NUL_SIGN)
        changes.append(f"NUL replaced with {NUL_SIGN}")
    if has_surrogate(value):
        value = _SURROGATE.sub(REPLACEMENT, value)
        changes.append("invalid UTF-8 or lone surrogate replaced with U+FFFD")
    return value, changes


def fit_json(value: Any) -> tuple[Any, list[str]]:
    """A JSON value whose strings hold no lone surrogate and whose numbers are all finite."""
    changes: set[str] = set()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            if has_surrogate(item):
                changes.add("invalid UTF-8 or lone surrogate replaced with U+FFFD")
                return _SURROGATE.sub(REPLACEMENT, item)
            return item
        if isinstance(item, float) and not math.isfinite(item):
            changes.add(f"{item} replaced with null")
            return None
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    fitted = walk(value)
    return (fitted, sorted(changes)) if changes else (value, [])


def has_lone_surrogate(text: bytes, parsed: Any) -> bool:
    """Whether JSON `text`, parsed as `parsed`, holds a string with a lone surrogate."""
    if not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        # orjson refuses every lone surrogate, and checks a 50 KB request in C; escaped emoji (valid pairs)
        # are common in JSON written with ASCII-only escapes, so this path is a usual one
        orjson.dumps(parsed)
    except (TypeError, orjson.JSONEncodeError):  # that, or something else it refuses (a 65-bit integer)
        return bool(fit_json(parsed)[1])
    return False


def fit_exchange(values: dict[str, Any]) -> list[str]:
    """Change, in place, the Exchange column values no database can hold; one note per column changed."""
    notes = []
    for name, value in values.items():
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                values[name] = None
                notes.append(f"{name}: a {len(str(abs(value)))}-digit number does not fit a 64-bit column; "
                             "stored as null")
        elif isinstance(value, str):
            fitted, changes = fit_text(value)
            limit = _LENGTHS.get(name)
            if limit is not None and len(fitted) > limit:
                changes.append(f"{len(fitted)} characters cut to {limit}")
                fitted = fitted[:limit]
            if changes:
                values[name] = fitted
                notes.append(f"{name}: {'; '.join(changes)}")
        elif isinstance(value, dict | list):
            fitted, changes = fit_json(value)
            if changes:
                values[name] = fitted
                notes.append(f"{name}: {'; '.join(changes)}")
    return notes
