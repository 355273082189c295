"""Storage through the real writer thread and SQLite: every captured Claude Code request round-trips."""

import json
import time

import pytest
from sqlmodel import Session, select

from ccbridge import redact
from ccbridge.captured import CapturedExchange
from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Blob, Exchange, MessageNode
from ccbridge.storage.models import Session as CCSession
from ccbridge.storage.read import (
    load_raw,
    message_refs_of,
    rebuild_request_body,
    request_headers,
    request_skeleton,
)
from ccbridge.storage.writer import Writer
from tests.fixtures import all_requests, fixture_files

REQUESTS = all_requests()


def captured_from_fixture(name, req, response=b"", headers=None, complete=True):
    body = req["body"]
    raw = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    now = time.time()
    return CapturedExchange(
        flow_id=name, started_at=now, method=req["method"], scheme="http", host="127.0.0.1", port=8082,
        path=req["path"], query=[(k, v) for k, vs in req["query"].items() for v in vs], http_version="HTTP/1.1",
        request_headers=[tuple(h) for h in req["headers"]], request_body=raw if req["method"] == "POST" else b"",
        status_code=200, response_headers=headers or [("content-type", "application/json")],
        response_chunks=[response] if response else [], chunk_times=[now] if response else [],
        finished_at=now, complete=complete,
    )


@pytest.fixture
def engine(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    yield engine
    engine.dispose()


def write_all(engine, items):
    writer = Writer(engine, batch_size=7)
    for item in items:
        writer.submit(item)
    writer.close()
    assert writer.failed == 0
    return writer


def test_every_fixture_request_rebuilds_equal(engine):
    write_all(engine, [captured_from_fixture(name, req) for name, req in REQUESTS])
    with Session(engine) as db:
        rows = {e.flow_id: e for e in db.exec(select(Exchange)).all()}
        assert len(rows) == len(REQUESTS)
        for name, req in REQUESTS:
            rebuilt = rebuild_request_body(db, rows[name])
            if req["method"] == "POST":
                assert rows[name].request_body_kind == "messages"
                assert rebuilt == req["body"], name
            else:
                assert rebuilt is None


def test_request_headers_rebuild_exactly_and_a_session_shares_one_header_piece(engine):
    items = [captured_from_fixture(name, req) for name, req in REQUESTS]
    writer = write_all(engine, items)
    salt = writer.committer.salt
    with Session(engine) as db:
        rows = {e.flow_id: e for e in db.exec(select(Exchange)).all()}
        for item in items:
            assert request_headers(db, rows[item.flow_id]) == redact.redact_headers(item.request_headers, salt)
        # the turns of one conversation differ in content-length only: one header list for all of them
        sync = [rows[n] for n, _ in REQUESTS if n.startswith("2.1.329/subagent-sync") and not rows[n].is_subagent]
        assert len({tuple(e.request_header_values or ()) for e in sync}) == len(sync) > 1
        assert len({e.request_headers_hash for e in sync}) == 1
        assert len({e.request_skeleton_hash for e in sync}) < len(sync)
        kinds = {b.kind for b in db.exec(select(Blob)).all()}
        assert {"headers", "skeleton"} <= kinds


def test_conversation_pieces_are_shared(engine):
    sync = [(n, r) for n, r in REQUESTS if n.startswith("2.1.329/subagent-sync")]
    write_all(engine, [captured_from_fixture(n, r) for n, r in sync])
    with Session(engine) as db:
        main = [e for e in db.exec(select(Exchange).order_by(Exchange.flow_id)).all() if not e.is_subagent]
        first, follow_up = main[0], main[-1]
        first_refs = message_refs_of(db, first.messages_tail)
        later_refs = message_refs_of(db, follow_up.messages_tail)
        # the follow-up resends the first turn: the first message is shared; the CLI re-sends the second
        # (its environment section) as a plain string instead of a block list, so that one is a new piece
        assert later_refs[0] == first_refs[0] and len(later_refs) > len(first_refs)
        skeletons = {e.flow_id: request_skeleton(db, e) for e in db.exec(select(Exchange)).all()}
        assert skeletons[first.flow_id].tool_refs == skeletons[follow_up.flow_id].tool_refs
        blob_count = len(db.exec(select(Blob)).all())
        distinct = {h for s in skeletons.values() if s for h in (s.system_refs or []) + (s.tool_refs or [])}
        assert blob_count <= len(distinct) + sum(e.message_count for e in main) + 10
        assert len(db.exec(select(MessageNode)).all()) < sum(e.message_count for e in db.exec(select(Exchange)))


def test_sessions_are_summarised(engine):
    write_all(engine, [captured_from_fixture(n, r) for n, r in REQUESTS])
    with Session(engine) as db:
        sessions = db.exec(select(CCSession)).all()
        assert len(sessions) == len(fixture_files())
        for s in sessions:
            count = len(db.exec(select(Exchange).where(Exchange.session_id == s.id)).all())
            assert s.request_count == count
            assert s.project_dir and s.project_dir.startswith("/home/dev/")
            assert s.client_version in ("2.1.329", "2.1.197")
        subagent_sessions = [s for s in sessions if s.subagent_runs]
        assert len(subagent_sessions) == 4


def test_raw_and_sse_response_recorded(engine):
    name, req = REQUESTS[1]
    stream = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
              b'"role":"assistant","model":"x","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
              b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
              b'"content_block":{"type":"text","text":""}}\n\n')
    item = captured_from_fixture(name, req, stream, [("content-type", "text/event-stream"),
                                                     ("anthropic-ratelimit-unified-5h-utilization", "0.5")])
    item.error_kind, item.error_message, item.complete = "upstream_abort", "Server disconnected.", False
    bad = captured_from_fixture("bad", {"method": "POST", "path": "/v1/x", "query": {}, "headers": [],
                                        "body": "{not json"}, b"\x00\xff binary")
    write_all(engine, [item, bad])
    with Session(engine) as db:
        cut = db.exec(select(Exchange).where(Exchange.flow_id == name)).one()
        assert load_raw(db, cut.response_raw_hash) == stream
        assert cut.is_sse and cut.sse_event_count == 2 and cut.error_kind == "upstream_abort"
        assert cut.input_tokens == 3 and cut.ratelimit["claims"]["5h"]["utilization"] == 0.5
        raw = db.exec(select(Exchange).where(Exchange.flow_id == "bad")).one()
        assert raw.request_body_kind == "raw"
        assert rebuild_request_body(db, raw) == b"{not json"
        assert load_raw(db, raw.response_raw_hash) == b"\x00\xff binary"


def test_gzip_request_body_is_stored_decoded(engine):
    import gzip

    _name, req = next((n, r) for n, r in REQUESTS if r["method"] == "POST")
    item = captured_from_fixture("gz", req)
    item.request_body = gzip.compress(item.request_body)
    item.request_headers = [*item.request_headers, ("Content-Encoding", "gzip")]
    write_all(engine, [item])
    with Session(engine) as db:
        stored = db.exec(select(Exchange).where(Exchange.flow_id == "gz")).one()
        assert stored.request_encoding == "gzip" and stored.request_body_kind == "messages"
        assert rebuild_request_body(db, stored) == req["body"]


def test_truncated_response_is_marked(engine):
    _name, req = next((n, r) for n, r in REQUESTS if r["method"] == "POST")
    item = captured_from_fixture("cut-by-limit", req, b"x" * 100)
    item.response_truncated = True
    write_all(engine, [item])
    with Session(engine) as db:
        assert db.exec(select(Exchange).where(Exchange.flow_id == "cut-by-limit")).one().response_truncated


def test_gzip_bomb_response_is_stored_up_to_the_limit_and_marked(engine):
    import zlib

    _name, req = next((n, r) for n, r in REQUESTS if r["method"] == "POST")
    compressor = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    bomb = b"".join(compressor.compress(bytes(1 << 20)) for _ in range(20)) + compressor.flush()
    item = captured_from_fixture("bomb", req, bomb, [("content-type", "application/json"),
                                                     ("content-encoding", "gzip")])
    item.body_limit = 1 << 20
    write_all(engine, [item])
    with Session(engine) as db:
        stored = db.exec(select(Exchange).where(Exchange.flow_id == "bomb")).one()
        assert stored.response_truncated and stored.response_size == 1 << 20
        assert load_raw(db, stored.response_raw_hash) == bytes(1 << 20)


def unholdable_exchanges():
    """Exchanges carrying what no database holds as is: the exchange must still be stored."""
    post = {"method": "POST", "path": "/v1/messages", "query": {}, "headers": []}
    def answer(tokens: int) -> bytes:
        return json.dumps({"type": "message", "role": "assistant", "content": [{"type": "text", "text": "hi"}],
                           "usage": {"input_tokens": tokens, "output_tokens": 3}}).encode()

    # orjson reads up to 64 unsigned bits as an integer (beyond a signed column), longer ones as a float
    big = captured_from_fixture("20-digits", {**post, "body": {"model": "m", "messages": []}}, answer(2**64 - 1))
    huge = captured_from_fixture("30-digits", {**post, "body": {"model": "m", "messages": []}}, answer(10**29))
    nul = captured_from_fixture("nul", {**post, "body": {"model": "claude\x00x", "messages": []}})
    header = captured_from_fixture("bad-utf8-header", {**post, "body": {"model": "m", "messages": []}})
    header.request_headers = [("user-agent", "claude-cli/2.1 \udcff\udcfe"), ("x-claude-code-session-id", "s\x00")]
    surrogate = captured_from_fixture("lone-surrogate", {**post, "body": "x"})
    surrogate.request_body = b'{"model":"m","messages":[{"role":"user","content":"half \\ud800 a pair"}]}'
    return big, huge, nul, header, surrogate


def test_values_no_database_holds_never_lose_the_exchange(engine):
    big, huge, nul, header, surrogate = unholdable_exchanges()
    writer = write_all(engine, [big, huge, nul, header, surrogate])
    assert writer.written == 5
    with Session(engine) as db:
        rows = {e.flow_id: e for e in db.exec(select(Exchange)).all()}
        assert rows["20-digits"].input_tokens is None and rows["20-digits"].output_tokens == 3
        assert any("input_tokens" in p and "20-digit" in p for p in rows["20-digits"].problems)
        assert rows["30-digits"].input_tokens is None and rows["30-digits"].output_tokens == 3
        assert json.loads(load_raw(db, rows["30-digits"].response_raw_hash))["usage"]["input_tokens"] == 10**29
        assert rows["nul"].model == "claude\u2400x" and any("NUL" in p for p in rows["nul"].problems)
        assert rebuild_request_body(db, rows["nul"]) == {"model": "claude\x00x", "messages": []}
        assert rows["bad-utf8-header"].user_agent == "claude-cli/2.1 \ufffd\ufffd"
        assert rows["bad-utf8-header"].session_id == "s\u2400" and rows["bad-utf8-header"].problems
        assert rows["lone-surrogate"].request_body_kind == "raw" and rows["lone-surrogate"].problems
        assert rebuild_request_body(db, rows["lone-surrogate"]) == surrogate.request_body


def test_a_row_refused_at_insert_is_stored_raw_with_the_reason(engine):
    from ccbridge.storage.record import build_rows

    def unfitted(captured, salt):
        rows = build_rows(captured, salt)
        rows.exchange["input_tokens"] = 10**30  # as if the fitting had missed it: SQLite refuses the insert
        return rows

    _name, req = next((n, r) for n, r in REQUESTS if r["method"] == "POST")
    good = captured_from_fixture("fine", req)
    refused = captured_from_fixture("refused", req)
    writer = Writer(engine, batch_size=7, build=lambda c, salt: unfitted(c, salt) if c.flow_id == "refused"
                    else build_rows(c, salt))
    writer.submit(good)
    writer.submit(refused)
    writer.close()
    assert writer.failed == 0 and writer.written == 2
    with Session(engine) as db:
        rows = {e.flow_id: e for e in db.exec(select(Exchange)).all()}
        assert rows["fine"].request_body_kind == "messages" and not rows["fine"].problems
        stored = rows["refused"]
        assert stored.request_body_kind == "raw" and stored.input_tokens is None
        assert any(p.startswith("insert failed") for p in stored.problems)
        assert json.loads(rebuild_request_body(db, stored)) == req["body"]


def test_body_secrets_are_fingerprinted_only_when_asked(engine):
    key = "sk-ant-api03-" + "K3y" * 10 + "-Q9z"
    post = {"method": "POST", "path": "/v1/messages", "query": {}, "headers": []}
    request = {"model": "m", "messages": [{"role": "user", "content": f"use {key}"}]}
    answer = json.dumps({"type": "message", "role": "assistant", "content": [{"type": "text", "text": key}],
                         "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
    asked = captured_from_fixture("asked", {**post, "body": request}, answer)
    asked.redact_body_secrets = True
    as_sent = captured_from_fixture("as-sent", {**post, "body": request}, answer)
    write_all(engine, [asked, as_sent])
    with Session(engine) as db:
        rows = {e.flow_id: e for e in db.exec(select(Exchange)).all()}
        redacted = rebuild_request_body(db, rows["asked"])
        assert key not in json.dumps(redacted) and redacted["messages"][0]["content"].startswith("use sk-ant-api03…")
        assert key.encode() not in load_raw(db, rows["asked"].response_raw_hash)
        assert rebuild_request_body(db, rows["as-sent"]) == request  # off by default: recorded as sent
        assert key.encode() in load_raw(db, rows["as-sent"].response_raw_hash)
