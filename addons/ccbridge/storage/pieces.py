"""Split a Messages request body into content-addressed pieces, and rebuild it from them.

Pure functions on plain data (`decompose`, `assemble`, `message_nodes`, `raw_row`); read.py puts bodies back
together from the database. See models.py for why.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from .models import MessageNode

CACHE_KEY = "cache_control"
SECTIONS = ("system", "tools", "messages")

Path = list[str | int]


def compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_json(data: bytes | str | None) -> Any:
    """The parsed JSON, or None when `data` is empty or not JSON."""
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)  # what orjson refuses but Python reads (big integers, NaN)
        except ValueError:
            return None


# 128 bits of SHA-256: ample for content addressing, and every reference costs half of a full digest.
HASH_CHARS = 32


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def piece_hash(value: Any) -> str:
    """The key of a piece: its compact JSON in the key order the client sent (clients repeat their order)."""
    return text_hash(compact_json(value))


def bytes_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def node_id(parent_id: str | None, message_hash: str) -> str:
    return hashlib.sha256(f"{parent_id or ''}/{message_hash}".encode()).hexdigest()[:HASH_CHARS]


def strip_cache_marks(value: Any, path: Path | None = None) -> tuple[Any, list[tuple[Path, Any]]]:
    """Return `value` without its `cache_control` markers, and where each one was (path, value).

    Markers sit on a piece itself or on content blocks (also blocks nested in a tool result's content), so
    only `content` lists are walked; a marker anywhere else simply stays part of the piece (still lossless).
    """
    path = path or []
    marks: list[tuple[Path, Any]] = []
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            stripped, inner = strip_cache_marks(item, [*path, i])
            items.append(stripped)
            marks.extend(inner)
        return items, marks
    if not isinstance(value, dict) or (CACHE_KEY not in value and not isinstance(value.get("content"), list)):
        return value, []
    out = dict(value)
    if CACHE_KEY in out:
        marks.append((path, out.pop(CACHE_KEY)))
    if isinstance(out.get("content"), list):
        out["content"], inner = strip_cache_marks(out["content"], [*path, "content"])
        marks.extend(inner)
    return out, marks


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


def make_piece(kind: str, value: Any) -> Piece:
    """`value` as a piece of `kind`, keyed by its compact JSON."""
    text = compact_json(value)
    return Piece(text_hash(text), kind, text)


# Headers whose value changes from one request to the next: the body's length, a retry count, ids of the
# request or of its trace. With their values kept on the exchange, the rest of a header list is the same
# for every request of a session and is stored once.
VARYING_HEADERS = frozenset({"content-length", "x-stainless-retry-count", "date", "traceparent", "tracestate",
                             "sentry-trace", "baggage"})


def varies(name: str) -> bool:
    lower = name.lower()
    return lower in VARYING_HEADERS or lower.endswith("request-id")


def split_headers(headers: Iterable[Iterable[str]]) -> tuple[list[list[str | None]], list[str]]:
    """The header list with each varying value replaced by null, and those values in order."""
    shared: list[list[str | None]] = []
    values: list[str] = []
    for name, value in headers:
        if varies(name):
            shared.append([name, None])
            values.append(value)
        else:
            shared.append([name, value])
    return shared, values


def join_headers(shared: Iterable[Iterable[str | None]], values: Iterable[str]) -> list[list[str]]:
    """Undo `split_headers`: the nulls filled with `values`, in order."""
    left = iter(values)
    return [[str(name), next(left, "") if value is None else value] for name, value in shared]


@dataclass
class Decomposed:
    """A request body as a skeleton plus references to pieces."""

    skeleton: dict[str, Any]
    system_refs: list[str] | None
    tool_refs: list[str] | None
    message_refs: list[str]
    cache_marks: list[list[Any]]  # [section, index, path, value]
    pieces: dict[str, Piece] = field(default_factory=dict)


class Skeleton(NamedTuple):
    """A request body but its messages: its other keys, and its system and tool lists as piece references.

    Stored as one piece (kind "skeleton"): the turns of a conversation change their messages only, so they
    share it.
    """

    body: dict[str, Any]
    system_refs: list[str] | None
    tool_refs: list[str] | None

    def piece(self) -> Piece:
        return make_piece("skeleton", {"body": self.body, "system": self.system_refs, "tools": self.tool_refs})

    @classmethod
    def parse(cls, json_text: str) -> Skeleton:
        stored = json.loads(json_text)
        return cls(stored["body"], stored["system"], stored["tools"])


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
            text = compact_json(stripped)
            digest = text_hash(text)
            if digest not in result.pieces:
                result.pieces[digest] = Piece(digest, kinds[section], text)
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


# Words every Anthropic event stream repeats; with the answer's own JSON they form the preset dictionary
# of a compressed stream. Never change it: stored streams need it to decompress (a new one needs a new
# encoding name).
SSE_DICTIONARY = (
    b'event: ping\ndata: {"type":"ping"}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text",'
    b'"text":""}}\n\nevent: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
    b'{"type":"input_json_delta","partial_json":""}}\n\n{"type":"thinking_delta","thinking":""}'
    b'{"type":"signature_delta","signature":""}{"type":"text_delta","text":""}\n\n'
    b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-","id":"msg_",'
    b'"type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":'
    b'{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":'
    b'{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":0,"service_tier":"standard"}}}'
)
COMPRESS_BELOW = 16 * 1024 * 1024  # larger bodies are kept as they are: compressing them costs more than it saves


def compress(data: bytes, dictionary: bytes | None = None) -> bytes | None:
    """zlib with an optional preset dictionary; None when it would not save at least a tenth."""
    if len(data) < 64 or len(data) > COMPRESS_BELOW:
        return None
    packer = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, *((dictionary,) if dictionary else ()))
    packed = packer.compress(data) + packer.flush()
    return packed if len(packed) < len(data) * 0.9 else None


def stream_dictionary(answer_json: str | None) -> bytes:
    return SSE_DICTIONARY + (answer_json or "").encode()


def raw_row(data: bytes, answer: Piece | None = None) -> dict[str, Any]:
    """A RawBody row for `data`: compressed when that pays, with the answer as dictionary for a stream."""
    packed = compress(data, stream_dictionary(answer.json_text) if answer else None)
    return {
        "hash": bytes_hash(data), "size": len(data), "encoding": "zlib" if packed is not None else None,
        "dictionary": answer.hash if answer and packed is not None else None,
        "data": packed if packed is not None else data,
    }
