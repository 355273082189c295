"""Write `capture_7d15ee9.json`: a capture database as release 7d15ee9 stored it, and what that release read back.

Run once with the OLD code on the path (the current code cannot write the old layout):

    git worktree add /tmp/old 7d15ee9
    PYTHONPATH=/tmp/old/addons .venv/bin/python tests/unit/ccbridge/storage/old_release/make_fixture.py
    git worktree remove /tmp/old

The file holds the old DDL for SQLite and PostgreSQL (compiled from the old models), every row of every
table (datetimes as ISO text, bytes as base64), and per flow id the request body and header list the old
code rebuilt. test_upgrade.py loads it into a database and opens that with the current code.
"""

from __future__ import annotations

import base64
import json
import tempfile
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import Session, SQLModel

from ccbridge.captured import CapturedExchange
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange
from ccbridge.storage.pieces import rebuild_request_body
from ccbridge.storage.writer import Writer

OUT = Path(__file__).with_name("capture_7d15ee9.json")
START = 1_790_000_000.0
SESSION = "5b0c9a51-old-release-session"


def sse(text: str, model: str) -> bytes:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_old", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30,
                      "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def headers(length: int, request_id: str, agent: str | None = None) -> list[tuple[str, str]]:
    out = [("host", "api.anthropic.com"), ("user-agent", "claude-cli/2.1.329 (external, cli)"),
           ("x-app", "cli"), ("x-claude-code-session-id", SESSION), ("anthropic-version", "2023-06-01"),
           ("x-api-key", "sk-ant-api03-secret-key-0000000000000000"), ("content-length", str(length)),
           ("x-stainless-retry-count", "0"), ("x-client-request-id", request_id)]
    return out + ([("x-claude-code-agent-id", agent)] if agent else [])


def exchange(flow: str, at: float, body: bytes, *, method: str = "POST", path: str = "/v1/messages",
             answer: bytes = b"", status: int = 200, agent: str | None = None,
             content_type: str = "text/event-stream") -> CapturedExchange:
    return CapturedExchange(
        flow_id=flow, started_at=at, method=method, scheme="https", host="api.anthropic.com", port=443,
        path=path, query=[("beta", "true")] if method == "POST" else [], http_version="HTTP/1.1",
        request_headers=headers(len(body), f"req-{flow}", agent), request_body=body, request_done_at=at + 0.01,
        status_code=status, response_headers=[("content-type", content_type), ("request-id", f"req_{flow}")],
        first_byte_at=at + 0.2, finished_at=at + 0.9, response_chunks=[answer] if answer else [],
        chunk_times=[at + 0.9] if answer else [], complete=True)


def conversation() -> list[CapturedExchange]:
    billing = {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.329; cc_entrypoint=cli;"}
    system = [billing, {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": n, "description": f"The {n} tool.", "input_schema": {"type": "object", "properties": {}}}
             for n in ("Bash", "Read", "Edit")]
    metadata = {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": SESSION})}
    model = "claude-sonnet-4-5"
    first = {"role": "user", "content": [{"type": "text", "text": "List the files.",
                                          "cache_control": {"type": "ephemeral"}}]}
    answer = {"role": "assistant", "content": [{"type": "text", "text": "Here they are."}]}
    second = {"role": "user", "content": [{"type": "text", "text": "Now read README.md.",
                                           "cache_control": {"type": "ephemeral"}}]}
    turn1 = {"model": model, "max_tokens": 32000, "stream": True, "system": system, "tools": tools,
             "messages": [first], "metadata": metadata}
    plain_first = {"role": "user", "content": [{"type": "text", "text": "List the files."}]}
    turn2 = dict(turn1, messages=[plain_first, answer, second])
    sub = {"model": "claude-haiku-4-5", "max_tokens": 8000, "stream": True, "system": "You are a subagent.",
           "messages": [{"role": "user", "content": "Find the tests."}], "metadata": metadata}
    odd = b'{"model": "claude-sonnet-4-5", "messages": "not a list"}'
    return [
        exchange("flow-turn-1", START, json.dumps(turn1).encode(), answer=sse("Here they are.", model)),
        exchange("flow-turn-2", START + 5, json.dumps(turn2).encode(), answer=sse("It says hello.", model)),
        exchange("flow-subagent", START + 7, json.dumps(sub).encode(), agent="agent-7",
                 answer=sse("tests/ holds them.", "claude-haiku-4-5")),
        exchange("flow-odd-body", START + 9, odd, status=400, content_type="application/json",
                 answer=b'{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}'),
        exchange("flow-get", START + 10, b"", method="GET", path="/api/hello", status=404,
                 content_type="text/plain", answer=b"not found"),
        exchange("flow-gzip-raw", START + 11, zlib.compress(b"\x00binary"), path="/v1/upload",
                 content_type="application/json", answer=b"{}"),
    ]


def ddl(dialect: Any) -> list[str]:
    statements = []
    for table in SQLModel.metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        statements += [str(CreateIndex(index).compile(dialect=dialect)).strip() for index in table.indexes]
    return statements


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(f"sqlite:///{folder}/old.db")
        writer = Writer(engine, batch_size=3)
        for item in conversation():
            writer.submit(item)
        writer.close()
        assert writer.failed == 0
        rows: dict[str, list[dict[str, Any]]] = {}
        with engine.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                rows[table.name] = [{k: plain(v) for k, v in row._mapping.items()}
                                    for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
        expected = {}
        with Session(engine) as db:
            for ex in db.exec(select(Exchange).order_by(Exchange.id)).scalars():
                body = rebuild_request_body(db, ex)
                expected[ex.flow_id] = {
                    "body": {"bytes": base64.b64encode(body).decode()} if isinstance(body, bytes) else {"json": body},
                    "headers": ex.request_headers,
                }
        engine.dispose()
    fixture = {"release": "7d15ee9", "ddl": {"sqlite": ddl(sqlite.dialect()), "postgresql": ddl(postgresql.dialect())},
               "rows": rows, "expected": expected}
    OUT.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
