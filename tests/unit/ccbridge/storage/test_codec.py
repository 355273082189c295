"""Journal records of captured exchanges: every field comes back, the bodies are written without a copy, and
records of the first format (one pickle) are still read."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from ccbridge.captured import CapturedExchange
from ccbridge.storage.codec import pack, parts, unpack
from ccbridge.storage.journal import START, Appender, Reader


def exchange(**changes: object) -> CapturedExchange:
    captured = CapturedExchange(
        flow_id="f1", started_at=1.5, method="POST", scheme="https", host="api.anthropic.com", port=443,
        path="/v1/messages", query=[("beta", "true")], http_version="HTTP/1.1",
        request_headers=[("x-api-key", "k")], request_body=b"{}", response_chunks=[b"a", b"b"],
        route={"provider": "p"}, complete=True)
    return dataclasses.replace(captured, **changes)


def test_a_captured_exchange_round_trips_through_a_record():
    captured = CapturedExchange(
        flow_id="f1", started_at=1.5, method="POST", scheme="https", host="api.anthropic.com", port=443,
        path="/v1/messages", query=[("beta", "true")], http_version="HTTP/1.1",
        request_headers=[("x-api-key", "k")], request_body=b"{}", response_chunks=[b"a", b"b"],
        route={"provider": "p"}, complete=True)
    assert unpack(pack(captured)) == captured


@pytest.mark.parametrize("changes", [
    {"request_body": None, "response_chunks": []},
    {"request_body": b"", "response_chunks": [b""], "provider_response": b""},
    {"request_body": bytes(range(256)) * 400, "response_chunks": [b"\x00\n\n", b"data: x\n\n" * 3] * 700,
     "chunk_times": [1.0, 2.0] * 700, "provider_response": b'{"id":"chatcmpl"}',
     "provider_request": {"model": "m", "messages": []}, "response_truncated": True},
    {"error_kind": "timeout", "error_message": "no data", "status_code": None, "response_headers": None},
])
def test_every_field_and_every_body_byte_comes_back(changes: dict[str, object]):
    captured = exchange(**changes)
    assert unpack(pack(captured)) == captured


def test_the_bodies_are_handed_to_the_journal_as_they_are():
    body, answer = b"x" * 50_000, b"event: message_stop\n\n"
    found = parts(exchange(request_body=body, response_chunks=[answer]))
    assert found[1] is body and found[2] is answer
    assert b"".join(found) == pack(exchange(request_body=body, response_chunks=[answer]))


def test_a_record_appended_in_parts_reads_back_whole_and_undamaged(tmp_path: Path):
    captured = exchange(request_body=b"{" * 70_000, response_chunks=[b"one", b"two", b"three"])
    appender = Appender(tmp_path)
    appender.append(*parts(captured))
    (record,) = Reader(tmp_path).read(START).records
    assert not record.damaged
    assert unpack(record.payload) == captured


def test_records_of_the_first_format_are_still_read():
    captured = exchange()
    first_format = pickle.dumps(dataclasses.asdict(captured) | {"dropped_field": 1}, protocol=5)
    assert unpack(first_format) == captured


@pytest.mark.parametrize("payload", [
    b"not an exchange",
    pack(exchange())[:-1],  # a body cut short
    pack(exchange()) + b"?",
    pickle.dumps(["a", "list"], protocol=5),
])
def test_a_payload_that_is_not_an_exchange_is_refused(payload: bytes):
    with pytest.raises(Exception):  # noqa: B017 - any error: the drain sets the record aside with it
        unpack(payload)
