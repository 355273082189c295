"""SQLModel tables: what the proxy writes and the viewer reads.

A request body of Claude Code is split into content-addressed pieces so that a conversation that resends
its whole history every turn costs storage linear in its length, not quadratic:

- `Blob`: one distinct JSON piece (a system block, a tool definition, a message, an answer), stored once,
  keyed by a hash of its compact JSON (128 bits of SHA-256), with every `cache_control` marker removed (the marker moves
  forward each turn and would otherwise make every message new). Markers are kept on the exchange.
- `MessageNode`: the message lists as a prefix tree. A node is (parent node, message); an exchange points
  at the node of its last message, so the ordered message references of a request are the path from the
  root to that node, and "request B continues request A" is "A's node is an ancestor of B's node".
- `RawBody`: bytes that are not decomposed (SSE streams, non-JSON or odd bodies), also content-addressed.

What stays the same from one request to the next is a `Blob` too, so a turn costs little more than what it
adds: the request's skeleton (the body but its messages, with the system and tool lists as references to
their pieces, kind "skeleton") and its header list (kind "headers"), whose values that change every request
(its length, a request id) stay on the exchange.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Table, Text, inspect
from sqlmodel import Field, SQLModel

# The message tree has small rows keyed by their hash alone: SQLite stores them without a rowid and so
# without a second index on the key (other databases ignore the option). Tables of large rows keep the
# rowid: SQLite packs large rows of WITHOUT ROWID tables poorly.
NO_ROWID = {"sqlite_with_rowid": False}


class Blob(SQLModel, table=True):
    """One distinct JSON piece of a request or response, stored once."""

    hash: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # system | tool | message | skeleton | headers
    size: int
    json_text: str = Field(sa_column=Column(Text, nullable=False))


class MessageNode(SQLModel, table=True):
    """A message at a position in a conversation: the prefix tree of all message lists."""

    __table_args__ = NO_ROWID

    id: str = Field(primary_key=True, max_length=32)  # hash of (parent id, message hash)
    parent_id: str | None = Field(default=None, max_length=32)
    message_hash: str = Field(max_length=64, index=True)
    depth: int  # 1 for the first message


class RawBody(SQLModel, table=True):
    """Bytes of a body as sent (content-encoding removed), content-addressed, stored compressed.

    `encoding` is None (stored as is) or "zlib"; with `dictionary`, the zlib stream was made with a preset
    dictionary: SSE_DICTIONARY plus the JSON text of that Blob (the answer the stream carries), which
    makes a stream cost little more than its answer. `read.load_raw` undoes all of it.
    """

    hash: str = Field(primary_key=True, max_length=64)  # of the bytes before compression
    size: int  # before compression
    encoding: str | None = Field(default=None, max_length=16)
    dictionary: str | None = Field(default=None, max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Exchange(SQLModel, table=True):
    """One HTTP request and its response (or what arrived of it), as the proxy saw them."""

    __table_args__ = (
        Index("ix_exchange_session_started", "session_id", "started_at"),
        Index("ix_exchange_agent_started", "agent_id", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flow_id: str = Field(max_length=64, unique=True)

    # When (UTC, microsecond precision).
    started_at: datetime = Field(index=True)
    request_done_at: datetime | None = None
    first_byte_at: datetime | None = None  # upstream's first response byte
    finished_at: datetime | None = None  # last byte, or the moment the exchange broke off

    # Request line and headers (secrets fingerprinted, see redact.py).
    method: str = Field(max_length=16)
    scheme: str = Field(max_length=8)
    host: str = Field(max_length=255)
    port: int
    path: str = Field(sa_column=Column(Text, nullable=False))
    query: str = Field(default="", sa_column=Column(Text, nullable=False))
    http_version: str = Field(default="", max_length=16)
    # The header list (a Blob) with the values that vary per request kept here; read.request_headers joins them.
    request_headers_hash: str | None = Field(default=None, max_length=64)
    request_header_values: list[str] | None = Field(default=None, sa_column=Column(JSON))

    # Request body: "messages" (decomposed into pieces), "raw" (bytes in RawBody) or "empty".
    request_body_kind: str = Field(default="empty", max_length=16)
    request_size: int = 0
    request_skeleton_hash: str | None = Field(default=None, max_length=64)  # Blob: all but the messages
    messages_tail: str | None = Field(default=None, max_length=32, index=True)
    message_count: int = 0
    cache_marks: list[list[Any]] | None = Field(default=None, sa_column=Column(JSON))
    request_raw_hash: str | None = Field(default=None, max_length=64)
    request_encoding: str | None = Field(default=None, max_length=64)  # content-encoding the client used

    # Who: Claude Code's identity for this request.
    # no index of its own: ix_exchange_session_started begins with it
    session_id: str | None = Field(default=None, max_length=128)
    session_source: str | None = Field(default=None, max_length=32)  # header | metadata_json | metadata_legacy
    agent_id: str | None = Field(default=None, max_length=64)
    parent_agent_id: str | None = Field(default=None, max_length=64)
    is_subagent: bool = False
    client_version: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, sa_column=Column(Text))
    model: str | None = Field(default=None, max_length=128, index=True)
    stream: bool | None = None

    # Response as the client received it.
    status_code: int | None = None
    response_headers: list[list[str]] | None = Field(default=None, sa_column=Column(JSON))
    response_content_type: str | None = Field(default=None, max_length=255)
    response_encoding: str | None = Field(default=None, max_length=64)  # content-encoding sent upstream->client
    response_raw_hash: str | None = Field(default=None, max_length=64)  # decoded body / SSE stream as received
    response_size: int = 0  # decoded bytes
    response_truncated: bool = False  # longer than capture.max_body_mb: the client got it all, storage the start
    is_sse: bool = False
    sse_event_count: int = 0
    sse_event_times: list[float] | None = Field(default=None, sa_column=Column(JSON))  # ms after started_at

    # The answer, reassembled (from SSE or the JSON body).
    response_message_hash: str | None = Field(default=None, max_length=64)  # Blob of {role, content}
    response_message: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # all but content
    stop_reason: str | None = Field(default=None, max_length=32)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None

    # Rate-limit windows from anthropic-ratelimit-unified-*: {"status": .., "claims": {"5h": {...}}}.
    ratelimit: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))

    # How it ended: complete, or error_kind in client_abort | upstream_abort | timeout | error.
    complete: bool = False
    error_kind: str | None = Field(default=None, max_length=32)
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    # What storage could not keep as sent: a body cut at capture.max_body_mb, an encoding that would not
    # decode, a value no database holds (replaced), a row stored raw because its insert failed.
    problems: list[str] | None = Field(default=None, sa_column=Column(JSON))

    # Routing (subagents answered by another provider); None when the exchange went to its own host.
    routed: bool = Field(default=False, index=True)
    route: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    provider_request: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    provider_response_hash: str | None = Field(default=None, max_length=64)  # RawBody, as the provider sent it


class Session(SQLModel, table=True):
    """A Claude Code session: a summary kept up to date by the writer, for fast listing."""

    __table_args__ = (Index("ix_session_last_activity", "last_activity_at", "id"),)

    id: str = Field(primary_key=True, max_length=128)
    started_at: datetime
    last_activity_at: datetime
    client_version: str | None = Field(default=None, max_length=64)
    project_dir: str | None = Field(default=None, sa_column=Column(Text))
    models: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    request_count: int = 0
    subagent_request_count: int = 0
    subagent_runs: int = 0  # distinct agent ids
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    error_count: int = 0
    routed_count: int = 0


class Meta(SQLModel, table=True):
    """Settings of this database (e.g. the salt of secret fingerprints)."""

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


class JournalCheckpoint(SQLModel, table=True):
    """How far a proxy's journal is committed; updated in the same transaction as the rows it covers."""

    journal_id: str = Field(primary_key=True, max_length=64)
    segment: int = 0  # the position right after the last committed record
    offset: int = 0
    recorded: int = 0  # exchanges committed from this journal, ever
    failed: int = 0  # records set aside (the journal's failed/ folder says why)
    updated_at: datetime


class AlternateAnswer(SQLModel, table=True):
    """Another model's answer to a recorded request: a `ccbridge replay`, or a shadow route's copy.

    The request is the original exchange's (rebuilt from storage); what differs is where it went and what
    came back. Costs are computed when the row is written, from the configured or genai-prices prices.
    """

    id: int | None = Field(default=None, primary_key=True)
    # The original request (Exchange.id); None until it is stored (a shadow copy may be stored before it).
    exchange_id: int | None = Field(default=None, index=True)
    # A shadow copy's original flow id: what links the two whichever is stored first; unique because the
    # journal may deliver a record twice. None for replays.
    flow_id: str | None = Field(default=None, max_length=64, unique=True)
    kind: str = Field(max_length=16)  # replay | shadow
    provider: str = Field(max_length=128)  # a routing provider's name, or "anthropic"
    model: str = Field(max_length=255)
    api: str | None = Field(default=None, max_length=16)  # chat | responses | messages
    created_at: datetime
    request: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # as sent to the provider
    answer: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # as an Anthropic message
    raw_response: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # the provider's own bytes
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cost_usd: float | None = None  # None: no price known for this model
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for bulk inserts of plain dicts."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table
