"""The read API of storage: what the viewer and the CLI may ask of a capture database.

Message lists live in a prefix tree (see models.py). `ancestry` is the one recursive query over it: the
walk up from requests' last messages that a session's threads, an exact rebuild and prune all use; search
takes a few bounded steps down instead (`exchanges_sending`). Blobs and raw bodies are decoded here too,
so callers never see how bytes are packed.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import CTE, Select, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from .. import sse
from .db import open_engine as open_engine  # opening the database is part of reading it
from .models import AlternateAnswer, Blob, Exchange, MessageNode, RawBody
from .pieces import Skeleton as Skeleton  # a request skeleton is what read hands out
from .pieces import assemble, join_headers, stream_dictionary

CHUNK = 500  # hashes per IN (...): well below every database's limit on bound parameters

_NODE = inspect(MessageNode).local_table


class Node(NamedTuple):
    """A message node as the tree walk returns it."""

    parent_id: str | None
    message_hash: str
    depth: int


def ancestry(tails: Collection[str] | Select[Any]) -> CTE:
    """The nodes on the paths from the root to each of `tails` (ids, or a SELECT of ids), shared prefixes once."""
    start = tails if isinstance(tails, Select) else sorted(set(tails))
    columns = (_NODE.c.id, _NODE.c.parent_id, _NODE.c.message_hash, _NODE.c.depth)
    chain = select(*columns).where(_NODE.c.id.in_(start)).cte("chain", recursive=True)
    parent = _NODE.alias("parent")
    up = select(parent.c.id, parent.c.parent_id, parent.c.message_hash, parent.c.depth)
    return chain.union(up.join(chain, parent.c.id == chain.c.parent_id))


def message_tree(conn: Connection, tails: Collection[str] | Select[Any]) -> dict[str, Node]:
    """Every node above (and at) `tails`, by id."""
    chain = ancestry(tails)
    rows = conn.execute(select(chain.c.id, chain.c.parent_id, chain.c.message_hash, chain.c.depth))
    return {row[0]: Node(row[1], row[2], row[3]) for row in rows}


def paths_to(nodes: Mapping[str, Node], tails: Iterable[str]) -> dict[str, list[str]]:
    """Message hashes from the root down to each tail found in `nodes`; a broken chain gives its known end."""
    wanted = set(tails)
    memo: dict[str, list[str]] = {}  # requests share prefixes: each node's path is built once
    for tail in sorted(wanted):
        stack: list[str] = []
        current: str | None = tail
        while current is not None and current not in memo and current in nodes:
            stack.append(current)
            current = nodes[current].parent_id
        base = memo.get(current, []) if current is not None else []
        for node in reversed(stack):
            base = [*base, nodes[node].message_hash]
            memo[node] = base
    return {t: memo[t] for t in wanted if t in memo}


def message_paths(db: Session, tails: Collection[str] | Select[Any]) -> dict[str, list[str]]:
    """The ordered message hashes of every request whose last message node is one of `tails`.

    A SELECT of tail ids keeps a long list of ids out of the statement (a session can have thousands).
    """
    conn = db.connection()
    ends = conn.execute(tails).scalars() if isinstance(tails, Select) else tails
    return paths_to(message_tree(conn, tails), [t for t in ends if t is not None])


def message_refs_of(db: Session, tail: str | None) -> list[str]:
    """The ordered message hashes of the request whose last message node is `tail`; LookupError if a node is gone."""
    if tail is None:
        return []
    nodes = message_tree(db.connection(), [tail])
    path = paths_to(nodes, [tail]).get(tail, [])
    if not path or len(path) != nodes[tail].depth:
        raise LookupError(f"message chain ending at {tail} is incomplete")
    return path


def load_blob_texts(db: Session, hashes: Iterable[str]) -> dict[str, str]:
    """The JSON text of each stored blob among `hashes` (missing ones are left out)."""
    wanted = sorted(set(hashes))
    out: dict[str, str] = {}
    for i in range(0, len(wanted), CHUNK):
        part = wanted[i : i + CHUNK]
        out.update(db.exec(select(Blob.hash, Blob.json_text).where(col(Blob.hash).in_(part))).all())
    return out


def load_pieces(db: Session, hashes: Iterable[str]) -> dict[str, Any]:
    """Each stored blob among `hashes`, parsed."""
    return {h: json.loads(t) for h, t in load_blob_texts(db, hashes).items()}


def load_raw(db: Session, digest: str | None) -> bytes | None:
    """The bytes stored under `digest`, decompressed."""
    if digest is None:
        return None
    row = db.get(RawBody, digest)
    if row is None:
        return None
    if row.encoding is None:
        return row.data
    if row.encoding != "zlib":
        raise ValueError(f"raw body {digest} has unknown encoding {row.encoding!r}")
    if row.dictionary is None:
        return zlib.decompress(row.data)
    answer = load_blob_texts(db, [row.dictionary]).get(row.dictionary)
    return zlib.decompressobj(zdict=stream_dictionary(answer)).decompress(row.data)


def load_exchange(db: Session, exchange_id: int) -> Exchange | None:
    """The exchange numbered `exchange_id` (the viewer's /requests/<n>), or None."""
    return db.get(Exchange, exchange_id)


def rebuild_request_body(db: Session, exchange: Exchange) -> dict[str, Any] | bytes | None:
    """The request body as it was sent: a dict for decomposed bodies, bytes for raw ones."""
    if exchange.request_body_kind == "raw":
        return load_raw(db, exchange.request_raw_hash)
    skeleton = request_skeleton(db, exchange)
    if exchange.request_body_kind != "messages" or skeleton is None:
        return None
    message_refs = message_refs_of(db, exchange.messages_tail)
    texts = load_blob_texts(db, [*(skeleton.system_refs or []), *(skeleton.tool_refs or []), *message_refs])

    def pick(refs: list[str] | None) -> list[Any] | None:
        # parsed per reference: a piece used twice must not share one object when markers go back in
        return None if refs is None else [json.loads(texts[h]) for h in refs]

    return assemble(
        skeleton.body,
        pick(skeleton.system_refs),
        pick(skeleton.tool_refs),
        pick(message_refs),
        exchange.cache_marks,
    )


def load_skeletons(db: Session, hashes: Iterable[str | None]) -> dict[str, Skeleton]:
    """Each stored request skeleton among `hashes`, by hash."""
    return {h: Skeleton.parse(t) for h, t in load_blob_texts(db, [h for h in hashes if h]).items()}


def request_skeleton(db: Session, exchange: Exchange) -> Skeleton | None:
    """The skeleton of a decomposed request (all but its messages); None for other bodies."""
    digest = exchange.request_skeleton_hash
    if digest is None:
        return None
    skeleton = load_skeletons(db, [digest]).get(digest)
    if skeleton is None:
        raise LookupError(f"request skeleton {digest} is missing")
    return skeleton


def request_headers(db: Session, exchange: Exchange) -> list[list[str]]:
    """The request's header list as stored (secrets fingerprinted); LookupError if its piece is gone."""
    digest = exchange.request_headers_hash
    if digest is None:
        return []
    text = load_blob_texts(db, [digest]).get(digest)
    if text is None:
        raise LookupError(f"header list {digest} is missing")
    return join_headers(json.loads(text), exchange.request_header_values or [])


def rebuild_answer(db: Session, exchange: Exchange) -> dict[str, Any] | None:
    """The answer as the API sent it (its content put back), or None when there was none."""
    if exchange.response_message is None and exchange.response_message_hash is None:
        return None
    out = dict(exchange.response_message or {})
    if exchange.response_message_hash:
        text = load_blob_texts(db, [exchange.response_message_hash]).get(exchange.response_message_hash)
        if text is not None:
            out["content"] = json.loads(text).get("content")
    return out


def alternate_answers(db: Session, exchange_id: int) -> list[AlternateAnswer]:
    """Other models' answers to the exchange (replays, shadow copies), oldest first."""
    return alternates_of(db, [exchange_id]).get(exchange_id, [])


def alternates_of(db: Session, exchange_ids: Iterable[int], kind: str | None = None, *,
                  bodies: bool = True) -> dict[int, list[AlternateAnswer]]:
    """The alternate answers (of `kind`, else all) of each of these exchanges, oldest first.

    `bodies=False` leaves out what was sent and the provider's raw bytes (read on access).
    """
    ids = sorted(set(exchange_ids))
    found: dict[int, list[AlternateAnswer]] = {}
    for start in range(0, len(ids), 500):  # bounded IN lists
        query = select(AlternateAnswer).where(col(AlternateAnswer.exchange_id).in_(ids[start:start + 500]))
        if kind is not None:
            query = query.where(col(AlternateAnswer.kind) == kind)
        if not bodies:
            query = query.options(*(defer(getattr(AlternateAnswer, c)) for c in ("request", "raw_response")))
        for row in db.exec(query.order_by(col(AlternateAnswer.created_at), col(AlternateAnswer.id))).all():
            if row.exchange_id is not None:
                found.setdefault(row.exchange_id, []).append(row)
    return found


@dataclass(frozen=True)
class StoredEvent:
    """One server-sent event of a stored response stream, with when it arrived (ms after the start)."""

    event: str
    data: str
    at: float | None


def response_events(db: Session, exchange: Exchange) -> list[StoredEvent]:
    """The events of a streamed response as stored; empty for a response that was not a stream."""
    if not exchange.is_sse:
        return []
    raw = load_raw(db, exchange.response_raw_hash) or b""
    times = exchange.sse_event_times or []
    return [StoredEvent(ev.event, ev.data, times[i] if i < len(times) else None)
            for i, ev in enumerate(sse.parse_events(raw))]


class SentMessage(NamedTuple):
    """An exchange whose request carried a message, and that message's hash."""

    exchange_id: int
    session_id: str | None
    started_at: datetime
    message_hash: str


def exchanges_sending(db: Session, message_hashes: Iterable[str], within: int) -> list[SentMessage]:
    """Exchanges whose request has one of `message_hashes` among its last `within` messages, nearest first."""
    wanted = set(message_hashes)
    origin = dict(db.exec(select(MessageNode.id, MessageNode.message_hash)
                          .where(col(MessageNode.message_hash).in_(wanted))).all())
    frontier = set(origin)
    found: list[SentMessage] = []
    for _ in range(within):
        if not frontier:
            break
        sent = db.exec(select(Exchange.id, Exchange.session_id, Exchange.started_at, Exchange.messages_tail)
                       .where(col(Exchange.messages_tail).in_(frontier))).all()
        found += [SentMessage(i, s, t, origin[n]) for i, s, t, n in sent if i is not None and n is not None]
        children = db.exec(select(MessageNode.id, MessageNode.parent_id)
                           .where(col(MessageNode.parent_id).in_(frontier))).all()
        frontier = set()
        for child, parent in children:
            if parent is not None:  # always: the query asked for children of the frontier
                origin[child] = origin[parent]
                frontier.add(child)
    return found
