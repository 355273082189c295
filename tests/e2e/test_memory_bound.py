"""Bounded memory whatever the traffic: 100 gzip bombs (50 MB decoded each, a few KB on the wire) and 20 plain
20 MB bodies through a real mitmdump. The process tree of mitmdump (the proxy and its storage writer) stays
under 1 GiB of resident memory, the client gets every byte as sent, and every exchange is recorded, the bombs
marked truncated at capture.max_body_mb."""

from __future__ import annotations

import hashlib
import json
import queue
import random
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from ccbridge.storage.db import open_engine
from ccbridge.storage.models import Exchange
from tests.support.memory import TreePeak
from tests.support.mock_anthropic import (
    MockAnthropic,
    MockRequest,
    Reply,
    json_reply,
    message_events,
    message_json,
    split_every,
    sse_event,
    sse_reply,
    text_block,
)
from tests.support.proxy import ProxyProcess, start_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

MB = 1024 * 1024
GIB = 1024 * MB
BOMB = 50 * MB  # decoded size of each bomb
PLAIN = 20 * MB
MAX_BODY_MB = 32  # below a bomb, above a plain body: bombs are truncated, plain bodies stored whole
CLIENTS = 4
CASE = "x-fault-case"


def gzip_stream(pieces: Iterator[bytes]) -> bytes:
    """gzip of the concatenated pieces, without holding them all decoded."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([*(encoder.compress(p) for p in pieces), encoder.flush()])


def repeated(head: bytes, unit: bytes, tail: bytes, size: int) -> Iterator[bytes]:
    """head + unit repeated + tail, `size` bytes in all (the unit is cut to fit)."""
    yield head
    left = size - len(head) - len(tail)
    while left > 0:
        yield unit[:left]
        left -= len(unit)
    yield tail


def json_bomb() -> bytes:
    """A Messages answer whose text makes the JSON 50 MB, gzip-encoded (about 50 KB)."""
    head, tail = json.dumps(message_json([text_block("@")])).encode().split(b'"@"')
    return gzip_stream(repeated(head + b'"', b"A" * 65536, b'"' + tail, BOMB))


def sse_bomb() -> bytes:
    """A stream of text deltas, 50 MB of SSE, gzip-encoded."""
    frames = message_events([text_block("start")])
    delta = sse_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": "B" * 16_000}})
    head, tail = b"".join(frames[:4]), b"".join(frames[4:])
    units = delta * 4
    return gzip_stream(repeated(head, units, tail, BOMB))


def request_bomb() -> bytes:
    """A request whose message makes the JSON 50 MB, gzip-encoded."""
    head, tail = json.dumps({"model": "claude-opus-5-5", "max_tokens": 16, "messages": [
        {"role": "user", "content": "@"}]}).encode().split(b'"@"')
    return gzip_stream(repeated(head + b'"', b"C" * 65536, b'"' + tail, BOMB))


def plain_text(rng: random.Random, size: int) -> str:
    """`size` characters of varied text (1 MB of random words, repeated)."""
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 12))) for _ in range(120_000)]
    unit = " ".join(words)[:MB]
    return (unit * (size // len(unit) + 1))[:size]


@dataclass
class Case:
    kind: str  # json-bomb | sse-bomb | request-bomb | plain-request | plain-json | plain-sse
    body: bytes  # what the client sends
    encoding: str | None = None  # the request's content-encoding


@dataclass
class Received:
    case: Case
    request_id: str
    sent_sha256: str
    raw_sha256: str  # of the response body as it arrived, before any decoding
    status: int


class Answers:
    """The mock's handler: the reply each case gets (the big ones built once, reused)."""

    def __init__(self, rng: random.Random) -> None:
        text = plain_text(rng, PLAIN - 400)
        self.replies: dict[str, Reply] = {
            "json-bomb": Reply(200, [("content-type", "application/json"), ("content-encoding", "gzip")],
                               split_every(json_bomb(), 16_384), framing="length"),
            "sse-bomb": sse_reply(split_every(sse_bomb(), 16_384), headers=[("content-encoding", "gzip")]),
            "plain-json": json_reply(message_json([text_block(text)])),
            "plain-sse": sse_reply(message_events([text_block(text)], piece=256 * 1024)),
        }
        self.replies["plain-json"].body = split_every(self.replies["plain-json"].body_bytes, 256 * 1024)

    def __call__(self, request: MockRequest) -> Reply:
        return self.replies.get(request.header(CASE) or "", json_reply(message_json([text_block("small")])))


def cases(rng: random.Random) -> list[Case]:
    bomb = request_bomb()
    plain = json.dumps({"model": "claude-opus-5-5", "max_tokens": 16, "messages": [
        {"role": "user", "content": plain_text(rng, PLAIN - 200)}]}).encode()
    found = [Case("json-bomb", b"{}") for _ in range(40)] + [Case("sse-bomb", b"{}") for _ in range(40)]
    found += [Case("request-bomb", bomb, "gzip") for _ in range(20)]
    found += [Case("plain-request", plain) for _ in range(10)]
    found += [Case("plain-json", b"{}") for _ in range(5)] + [Case("plain-sse", b"{}") for _ in range(5)]
    rng.shuffle(found)
    return found


def send_all(url: str, todo: list[Case]) -> tuple[list[Received], list[str]]:
    """Every case through the proxy from CLIENTS threads; the response body hashed as it arrived."""
    work: queue.Queue[Case] = queue.Queue()
    for case in todo:
        work.put(case)
    received: list[Received] = []
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            while True:
                try:
                    case = work.get_nowait()
                except queue.Empty:
                    return
                headers = {CASE: case.kind, "content-type": "application/json"}
                if case.encoding:
                    headers["content-encoding"] = case.encoding
                try:
                    with http.stream("POST", "/v1/messages", content=case.body, headers=headers) as r:
                        digest = hashlib.sha256()
                        for chunk in r.iter_raw():  # not decoded: the bytes as they crossed the proxy
                            digest.update(chunk)
                    received.append(Received(case, r.headers.get("request-id", ""),
                                             hashlib.sha256(case.body).hexdigest(), digest.hexdigest(),
                                             r.status_code))
                except httpx.HTTPError as exc:
                    failures.append(f"{case.kind}: {exc!r}")

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    return received, failures


def stored(proxy: ProxyProcess) -> dict[str, Exchange]:
    assert proxy.db_url
    engine = open_engine(proxy.db_url, create=False)
    try:
        with Session(engine) as db:
            return {e.flow_id: e for e in db.exec(select(Exchange)).all()}
    finally:
        engine.dispose()




def test_bombs_and_big_bodies_keep_the_proxy_under_one_gib(tmp_path: Path):
    rng = random.Random(8)
    answers = Answers(rng)
    todo = cases(rng)
    config = {"capture": {"max_body_mb": MAX_BODY_MB}}
    with MockAnthropic(answers, keep_bodies=False) as mock, start_proxy(mock.url, tmp_path, config) as proxy:
        started = time.monotonic()
        with TreePeak(proxy.pid) as memory:
            received, failures = send_all(proxy.url, todo)
            passed = time.monotonic() - started
            deadline = time.monotonic() + 300
            while proxy.stored_count() < len(todo) and time.monotonic() < deadline:
                time.sleep(0.5)
            drained = time.monotonic() - started
        assert proxy.stop(timeout=15) == 0
    shares = ", ".join(f"{'mitmdump' if pid == proxy.pid else pid} {rss / MB:.0f}"
                       for pid, rss in memory.peak_parts.items())
    print(f"memory: peak RSS of mitmdump and its writer {memory.peak / MB:.0f} MiB ({shares}; "
          f"{memory.samples} samples); "
          f"{len(todo)} exchanges passed in {passed:.0f} s, all stored after {drained:.0f} s")
    assert failures == []
    assert memory.peak < GIB, f"peak resident memory {memory.peak / MB:.0f} MiB"

    # the client got every byte as the upstream sent it, and the upstream every byte the client sent
    sent = {e.request_id: e for e in mock.exchanges}
    assert len(received) == len(todo)
    for got in received:
        upstream = sent[got.request_id]
        assert got.status == 200 and upstream.complete
        assert got.raw_sha256 == upstream.response_sha256, got.case.kind
        assert got.sent_sha256 == upstream.request.sha256, got.case.kind

    rows = list(stored(proxy).values())
    assert len(rows) == len(todo)
    kinds = {got.request_id: got.case.kind for got in received}
    by_kind: dict[str, list[Exchange]] = {}
    for row in rows:
        request_id = next(v for k, v in row.response_headers or [] if k.lower() == "request-id")
        by_kind.setdefault(kinds[request_id], []).append(row)
    limit = MAX_BODY_MB * MB
    for row in by_kind["json-bomb"] + by_kind["sse-bomb"]:
        assert row.complete and row.response_truncated and row.response_size == limit
    for row in by_kind["request-bomb"]:
        assert any("request: body longer than capture.max_body_mb" in p for p in row.problems or [])
    for row in by_kind["plain-json"] + by_kind["plain-sse"]:
        assert row.complete and not row.response_truncated and row.response_size >= PLAIN - 400
    plain_request = next(case.body for case in todo if case.kind == "plain-request")
    for row in by_kind["plain-request"]:
        assert row.request_size == len(plain_request) and row.request_body_kind == "messages"
    assert "Traceback" not in proxy.log()
