"""Split a Messages request body into content-addressed pieces, and rebuild it from them.

Pure functions on plain data (`decompose`, `assemble`, `message_nodes`) plus two small readers that
fetch pieces from the database (`rebuild_request_body`, `load_raw`). See models.py for why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from .models import Blob, Exchange, MessageNode, RawBody

CACHE_KEY = "cache_control"
SECTIONS = ("system", "tools", "messages")

Path = list[str | int]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def piece_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def bytes_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def node_id(parent_id: str | None, message_hash: str) -> str:
    return hashlib.sha256(f"{parent_id or ''}/{message_hash}".encode()).hexdigest()[:32]


def strip_cache_marks(value: Any, path: Path | None = None) -> tuple[Any, list[tuple[Path, Any]]]:
    """Return `value` without any `cache_control` key, and where each one was (path, value)."""
    path = path or []
    marks: list[tuple[Path, Any]] = []
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == CACHE_KEY:
                marks.append((path, item))
                continue
            out[key], inner = strip_cache_marks(item, [*path, key])
            marks.extend(inner)
        return out, marks
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            stripped, inner = strip_cache_marks(item, [*path, i])
            items.append(stripped)
            marks.extend(inner)
        return items, marks
    return value, marks


def put_cache_mark(value: Any, path: Path, mark: Any) -> None:
    target = value
    for step in path:
        target = target[step]
    target[CACHE_KEY] = mark


@dataclass
class Piece:
    hash: str
    kind: str
    json_text: str


@dataclass
class Decomposed:
    """A request body as a skeleton plus references to pieces."""

    skeleton: dict[str, Any]
    system_refs: list[str] | None
    tool_refs: list[str] | None
    message_refs: list[str]
    cache_marks: list[list[Any]]  # [section, index, path, value]
    pieces: dict[str, Piece] = field(default_factory=dict)


def _is_piece_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def is_decomposable(body: Any) -> bool:
    """True for a JSON object whose `messages` (and list-valued `system`, `tools`) are lists of objects."""
    if not isinstance(body, dict) or not _is_piece_list(body.get("messages")):
        return False
    return all(
        key not in body or not isinstance(body[key], list) or _is_piece_list(body[key])
        for key in ("system", "tools")
    )


def decompose(body: dict[str, Any]) -> Decomposed:
    """Split `body` (see `is_decomposable`) into pieces; `assemble` undoes it exactly (as JSON)."""
    skeleton = {k: v for k, v in body.items() if not (k in SECTIONS and isinstance(v, list))}
    result = Decomposed(skeleton=skeleton, system_refs=None, tool_refs=None, message_refs=[], cache_marks=[])
    kinds = {"system": "system", "tools": "tool", "messages": "message"}
    for section in SECTIONS:
        items = body.get(section)
        if not isinstance(items, list):
            continue
        refs = []
        for index, item in enumerate(items):
            stripped, marks = strip_cache_marks(item)
            digest = piece_hash(stripped)
            if digest not in result.pieces:
                result.pieces[digest] = Piece(digest, kinds[section], compact_json(stripped))
            refs.append(digest)
            result.cache_marks.extend([section, index, path, mark] for path, mark in marks)
        if section == "system":
            result.system_refs = refs
        elif section == "tools":
            result.tool_refs = refs
        else:
            result.message_refs = refs
    return result


def assemble(
    skeleton: dict[str, Any],
    system: list[Any] | None,
    tools: list[Any] | None,
    messages: list[Any] | None,
    cache_marks: Iterable[list[Any]] | None,
) -> dict[str, Any]:
    """Rebuild a request body from its skeleton, its pieces (already parsed) and its cache markers."""
    body = dict(skeleton)
    for section, items in (("system", system), ("tools", tools), ("messages", messages)):
        if items is not None:
            body[section] = items
    for section, index, path, mark in cache_marks or ():
        put_cache_mark(body[section][index], path, mark)
    return body


def message_nodes(message_refs: list[str]) -> list[MessageNode]:
    """The prefix-tree nodes for a list of message hashes, root first."""
    nodes: list[MessageNode] = []
    parent: str | None = None
    for depth, digest in enumerate(message_refs, start=1):
        current = node_id(parent, digest)
        nodes.append(MessageNode(id=current, parent_id=parent, message_hash=digest, depth=depth))
        parent = current
    return nodes


_CHAIN = text(
    "WITH RECURSIVE chain(id, parent_id, message_hash, depth) AS ("
    " SELECT id, parent_id, message_hash, depth FROM messagenode WHERE id = :tail"
    " UNION ALL SELECT m.id, m.parent_id, m.message_hash, m.depth"
    " FROM messagenode m JOIN chain c ON m.id = c.parent_id)"
    " SELECT message_hash, depth FROM chain ORDER BY depth"
)


def message_refs_of(db: Session, tail: str | None) -> list[str]:
    """The ordered message hashes of the request whose last message node is `tail`."""
    if tail is None:
        return []
    rows = db.connection().execute(_CHAIN, {"tail": tail}).all()
    if not rows or rows[0][1] != 1 or len(rows) != rows[-1][1]:
        raise LookupError(f"message chain ending at {tail} is incomplete")
    return [row[0] for row in rows]


def load_blob_texts(db: Session, hashes: Iterable[str]) -> dict[str, str]:
    wanted = set(hashes)
    if not wanted:
        return {}
    rows = db.exec(select(Blob).where(Blob.hash.in_(wanted))).all()  # type: ignore[attr-defined]
    return {row.hash: row.json_text for row in rows}


def load_raw(db: Session, digest: str | None) -> bytes | None:
    if digest is None:
        return None
    row = db.get(RawBody, digest)
    return None if row is None else row.data


def rebuild_request_body(db: Session, exchange: Exchange) -> dict[str, Any] | bytes | None:
    """The request body as it was sent: a dict for decomposed bodies, bytes for raw ones."""
    if exchange.request_body_kind == "raw":
        return load_raw(db, exchange.request_raw_hash)
    if exchange.request_body_kind != "messages" or exchange.request_skeleton is None:
        return None
    message_refs = message_refs_of(db, exchange.messages_tail)
    texts = load_blob_texts(db, [*(exchange.system_refs or []), *(exchange.tool_refs or []), *message_refs])

    def pick(refs: list[str] | None) -> list[Any] | None:
        # parsed per reference: a piece used twice must not share one object when markers go back in
        return None if refs is None else [json.loads(texts[h]) for h in refs]

    return assemble(
        exchange.request_skeleton,
        pick(exchange.system_refs),
        pick(exchange.tool_refs),
        pick(message_refs),
        exchange.cache_marks,
    )
