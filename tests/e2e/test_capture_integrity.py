"""Nothing lost, nothing leaked: secrets never reach the database files; load, shutdown and broken streams
are all recorded. Real mitmdump with the addon, in front of the mock Anthropic server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from ccbridge.storage.read import load_blob_texts, load_raw
from tests.support.mock_anthropic import (
    Cut,
    Gate,
    MockAnthropic,
    MockRequest,
    Reply,
    Stall,
    message_events,
    sse_reply,
    text_block,
    text_reply,
)
from tests.support.proxy import start_proxy, writer_children

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-api03-SECRETsecretSECRET0123456789abcdefXYZW-AA7q"
BEARER = "sk-ant-oat01-TOKENtokenTOKEN9876543210fedcbaQRST-BB8r"
COOKIE = "session=cookieSECRETvalue0123456789"


def body(stream: bool, text: str = "hello") -> dict:
    return {"model": "claude-opus-5-5", "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": text}]}


def database_bytes(db_url: str) -> bytes:
    path = Path(db_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_no_key_or_token_in_the_database_files(mock_anthropic: MockAnthropic, tmp_path: Path):
    with start_proxy(mock_anthropic.url, tmp_path) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
        for stream in (False, True):
            r = client.post("/v1/messages?beta=true", json=body(stream), headers={"x-api-key": API_KEY})
            assert r.status_code == 200
            r = client.post("/v1/messages", json=body(stream), headers={
                "authorization": f"Bearer {BEARER}", "cookie": COOKIE, "x-goog-api-key": API_KEY})
            assert r.status_code == 200
        client.post(f"/v1/messages?key={API_KEY}", json=body(False))
    # the upstream did get the real credentials: the proxy redacts storage, not traffic
    assert any(r.header("x-api-key") == API_KEY for r in mock_anthropic.requests)
    assert any(r.header("authorization") == f"Bearer {BEARER}" for r in mock_anthropic.requests)
    stored = database_bytes(proxy.db_url)
    assert len(stored) > 10_000
    for secret in (API_KEY, BEARER, COOKIE, "cookieSECRETvalue"):
        for fragment in (secret, secret[10:30], secret[-20:-4]):
            assert fragment.encode() not in stored, f"{fragment!r} reached the database"
    exchanges = proxy.exchanges()
    assert len(exchanges) == 5
    # fingerprints still tell which key was used
    first = dict(map(tuple, exchanges[0].request_headers))["x-api-key"]
    assert first.startswith("sk-ant-api03…") and first.endswith(tuple("0123456789abcdef")) and "#" in first


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_200_concurrent_requests_then_a_signal_keeps_every_record(mock_anthropic: MockAnthropic, tmp_path: Path,
                                                                   stop_signal: signal.Signals):
    with start_proxy(mock_anthropic.url, tmp_path) as proxy:

        async def one(client: httpx.AsyncClient, i: int) -> str:
            stream = i % 2 == 0
            if not stream:
                r = await client.post("/v1/messages", json=body(False, f"q{i}"))
                return r.json()["content"][0]["text"]
            async with client.stream("POST", "/v1/messages", json=body(True, f"q{i}")) as r:
                return "".join([chunk async for chunk in r.aiter_text()])

        async def all_of_them() -> list[str]:
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(base_url=proxy.url, timeout=60, limits=limits) as client:
                return await asyncio.gather(*(one(client, i) for i in range(200)))

        answers = asyncio.run(all_of_them())
        assert len(answers) == 200 and all(answers)
        assert proxy.stop(stop_signal) == 0  # right after the last response
    exchanges = proxy.exchanges()
    assert len(exchanges) == 200
    assert sum(e.is_sse for e in exchanges) == 100
    assert all(e.complete and e.status_code == 200 and e.response_message_hash for e in exchanges)
    assert len({e.flow_id for e in exchanges}) == 200


def test_stream_cut_by_upstream_is_recorded_with_what_arrived(mock_anthropic: MockAnthropic, tmp_path: Path):
    frames = message_events([text_block("partial answer that will be cut")], piece=5)
    mock_anthropic.queue(sse_reply([*frames[:5], Cut()]))
    with start_proxy(mock_anthropic.url, tmp_path) as proxy:
        received = b""
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            with pytest.raises(httpx.HTTPError), client.stream("POST", "/v1/messages", json=body(True)) as r:
                for chunk in r.iter_raw():
                    received += chunk
        client_ok = httpx.post(f"{proxy.url}/v1/messages", json=body(False), timeout=30)
        assert client_ok.status_code == 200  # the proxy keeps serving
    cut, after = proxy.exchanges()
    assert not cut.complete and cut.error_kind == "upstream_abort"
    with proxy.db() as db:
        assert load_raw(db, cut.response_raw_hash) == b"".join(frames[:5]) == received
        partial = json.loads(load_blob_texts(db, [cut.response_message_hash])[cut.response_message_hash])
    assert partial["content"] == [{"type": "text", "text": "partial an"}]  # the two deltas that arrived
    assert after.complete


def test_stream_abandoned_by_the_client_is_recorded(tmp_path: Path):
    gate = Gate(timeout=20)
    frames = message_events([text_block("the client will hang up after the first event")])

    def handler(request: MockRequest) -> Reply:
        if request.json().get("stream"):
            return sse_reply([frames[0], gate, *frames[1:]])
        return text_reply(request)

    with MockAnthropic(handler) as mock, start_proxy(mock.url, tmp_path) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            with client.stream("POST", "/v1/messages", json=body(True)) as r:
                first = next(r.iter_raw())
                assert first.startswith(b"event: message_start")
            # leaving the block closed the connection mid-stream
        assert gate.wait_reached(10)
        threading.Timer(0.5, gate.open).start()
        assert httpx.post(f"{proxy.url}/v1/messages", json=body(False), timeout=30).status_code == 200
    abandoned = next(e for e in proxy.exchanges() if e.is_sse)
    assert not abandoned.complete and abandoned.error_kind == "client_abort"
    with proxy.db() as db:
        assert load_raw(db, abandoned.response_raw_hash).startswith(frames[0])
    assert abandoned.response_message is not None and abandoned.response_message["id"]


def test_stalled_upstream_does_not_block_other_requests(tmp_path: Path):
    def handler(request: MockRequest) -> Reply:
        if json.loads(request.body or b"{}").get("messages", [{}])[0].get("content") == "stall":
            return sse_reply([message_events([text_block("x")])[0], Stall(5)])
        return text_reply(request)

    with MockAnthropic(handler) as mock, start_proxy(mock.url, tmp_path) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=30) as stalled_client:
            with stalled_client.stream("POST", "/v1/messages", json=body(True, "stall")) as r:
                next(r.iter_raw())
                other = httpx.post(f"{proxy.url}/v1/messages", json=body(False), timeout=10)
                assert other.status_code == 200


def test_a_killed_writer_process_is_replaced_and_recording_goes_on(mock_anthropic: MockAnthropic, tmp_path: Path):
    with start_proxy(mock_anthropic.url, tmp_path) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            assert client.post("/v1/messages", json=body(False, "before")).status_code == 200
            [writer] = writer_children(proxy.pid)
            os.kill(writer, signal.SIGKILL)  # as the OOM killer would
            for i in range(20):  # the proxy keeps serving throughout
                assert client.post("/v1/messages", json=body(i % 2 == 0, f"after {i}")).status_code == 200
                time.sleep(0.05)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not [p for p in writer_children(proxy.pid) if p != writer]:
                time.sleep(0.1)
            assert client.post("/v1/messages", json=body(False, "last")).status_code == 200
        assert proxy.stop() == 0
    assert "storage writer process stopped" in proxy.log()
    stored = {json.loads(rebuilt)["messages"][0]["content"] for rebuilt in rebuilt_bodies(proxy)}
    assert "last" in stored and {f"after {i}" for i in range(5, 20)} <= stored


def rebuilt_bodies(proxy) -> list[str]:
    from ccbridge.storage.read import rebuild_request_body

    with proxy.db() as db:
        return [json.dumps(rebuild_request_body(db, e)) for e in proxy.exchanges()]


GITHUB_TOKEN = "ghp_" + "Zx81" * 9  # fake, built in two pieces so no scanner takes it for a real one


def test_keys_in_paths_queries_and_with_the_option_bodies_never_reach_the_database(tmp_path: Path):
    def echo(request: MockRequest) -> Reply:
        return text_reply(request, f"you sent {GITHUB_TOKEN} and {API_KEY}")

    with MockAnthropic(echo) as mock, start_proxy(mock.url, tmp_path,
                                                  extra_args=["--set", "ccbridge_redact_body_secrets=true"]) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            prompt = f"deploy with {GITHUB_TOKEN} and {API_KEY}"
            for stream in (False, True):
                r = client.post(f"/v1/messages?t={GITHUB_TOKEN}", json=body(stream, prompt))
                assert r.status_code == 200 and r.content == mock.exchanges[-1].response_body  # every byte as sent
            client.post(f"/v1/keys/{API_KEY}/check", json=body(False))
    assert any(GITHUB_TOKEN in r.body.decode() for r in mock.requests)  # and so does the upstream
    stored = database_bytes(proxy.db_url)
    for secret in (API_KEY, GITHUB_TOKEN):
        for fragment in (secret, secret[8:28]):
            assert fragment.encode() not in stored, f"{fragment!r} reached the database"
    exchanges = proxy.exchanges()
    assert len(exchanges) == 3 and exchanges[2].path.startswith("/v1/keys/sk-ant-api03…")
    with proxy.db() as db:
        from ccbridge.storage.read import rebuild_request_body

        rebuilt = json.dumps(rebuild_request_body(db, exchanges[0]))
    assert "deploy with ghp_" in rebuilt and "#" in rebuilt  # the rest of the prompt is kept as sent
