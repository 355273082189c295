"""The capture core through a real mitmdump: bytes pass through unchanged and unbuffered, and are recorded.

Each test talks to the proxy (httpx or the anthropic SDK), checks what the client and the mock saw, then
stops the proxy (SIGTERM flushes the writer) and checks storage against the mock's record of what it sent.
Stored exchanges are matched to mock exchanges by the `request-id` header the mock puts on every answer.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
from typing import Any

import anthropic
import httpx
import pytest
from mitmproxy.io import FlowReader

from tests.support.mock_anthropic import (
    Cut,
    Gate,
    MockAnthropic,
    MockExchange,
    Pause,
    Reply,
    gzipped,
    message_events,
    message_json,
    split_every,
    sse_reply,
    text_block,
)
from tests.support.proxy import ProxyProcess, header, start_proxy

pytestmark = pytest.mark.e2e

API_HEADERS = {"x-api-key": "sk-ant-api03-fake-key", "anthropic-version": "2023-06-01"}
MODEL = "claude-opus-5-5"
UNICODE_TEXT = "Grüße — naïve café, 日本語のテキスト, emoji 🎉🧪 and ∑ ≠ ∞."
TIMEOUT = httpx.Timeout(60.0)


def messages_body(stream: bool = True, text: str = "hi") -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256, "stream": stream, "messages": [{"role": "user", "content": text}]}


def sdk_client(proxy: ProxyProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-api03-fake-key", max_retries=0, timeout=60)


def post_raw(proxy: ProxyProcess, body: bytes, path: str = "/v1/messages?beta=true",
             headers: dict[str, str] | None = None) -> tuple[httpx.Response, bytes]:
    """POST and return the response with its body exactly as received (content-encoding kept)."""
    headers = {**API_HEADERS, "content-type": "application/json", **(headers or {})}
    with httpx.Client(timeout=TIMEOUT) as client, client.stream("POST", proxy.url + path, content=body,
                                                                headers=headers) as response:
        return response, b"".join(response.iter_raw())


def assert_recorded(proxy: ProxyProcess, mock: MockAnthropic) -> dict[str, Any]:
    """Stop the proxy; every request the mock received is stored with the bytes the mock sent back."""
    from ccbridge.storage.read import load_raw

    sent = mock.wait_for(len(mock.exchanges))
    assert proxy.stop() == 0, proxy.log_tail()
    stored = proxy.exchanges()
    assert len(stored) == len(sent), [(e.method, e.path, e.status_code) for e in stored]
    by_id = {header(e.response_headers, "request-id"): e for e in stored}
    with proxy.db() as db:
        for mock_exchange in sent:
            exchange = by_id.get(mock_exchange.request_id)
            assert exchange is not None, f"not stored: {mock_exchange.request.method} {mock_exchange.request.target}"
            request = mock_exchange.request
            assert exchange.method == request.method
            assert exchange.path in (request.target, request.path)
            assert exchange.status_code == mock_exchange.status
            if mock_exchange.complete:
                assert exchange.complete, (exchange.error_kind, exchange.error_message)
            if request.method != "HEAD" and mock_exchange.response_body:
                assert exchange.response_raw_hash, "response body not stored"
                assert load_raw(db, exchange.response_raw_hash) == mock_exchange.response_decoded
            assert_request_body_stored(db, exchange, mock_exchange)
    return by_id


def assert_request_body_stored(db: Any, exchange: Any, mock_exchange: MockExchange) -> None:
    """The stored request body rebuilds to what was sent; an encoded one may be kept encoded or decoded."""
    from ccbridge.storage.read import rebuild_request_body

    received = mock_exchange.request.body
    rebuilt = rebuild_request_body(db, exchange)
    if not received:
        assert rebuilt in (None, b"")
        return
    encoding = mock_exchange.request.header("content-encoding")
    if encoding:
        assert exchange.request_encoding == encoding
        if rebuilt == received:
            return
        received = gzip.decompress(received)
    if isinstance(rebuilt, dict):
        assert rebuilt == json.loads(received)
    else:
        assert rebuilt == received


def odd_sse_stream() -> bytes:
    """An answer with multibyte text, SSE comments, `id:` and `retry:` lines, as one byte string."""
    frames = message_events([text_block(UNICODE_TEXT)], model=MODEL, piece=5)
    out = [b": keepalive\n\n", b"retry: 3000\n\n"]
    for number, frame in enumerate(frames, 1):
        out.append(b"id: %d\n" % number + frame)
        if number % 3 == 0:
            out.append(b": keepalive\n\n")
    return b"".join(out)


def split_awkwardly(data: bytes) -> list[bytes]:
    """Pieces that end inside `data:` lines, right after `\\n`, and between the bytes of UTF-8 characters."""
    cuts = set()
    for i, byte in enumerate(data):
        if 0x80 <= byte < 0xC0:  # a continuation byte: cut just before it
            cuts.add(i)
        if data.startswith(b"data: ", i):
            cuts.update((i + 3, i + 6))
        if byte == 0x0A:
            cuts.add(i + 1)
    points = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def sse_text(stream: bytes) -> str:
    """The text of all text deltas in an SSE stream."""
    text = []
    for line in stream.decode().split("\n"):
        if line.startswith("data: "):
            data = json.loads(line[6:])
            if data.get("type") == "content_block_delta" and data["delta"]["type"] == "text_delta":
                text.append(data["delta"]["text"])
    return "".join(text)


# -- (a) streaming is not buffered ---------------------------------------------------------------------------


def test_first_sse_event_reaches_httpx_client_while_upstream_holds_back(
        mock_anthropic: MockAnthropic, proxy: ProxyProcess) -> None:
    frames = message_events([text_block("streamed, not buffered")], model=MODEL)
    gate = Gate(timeout=15)
    mock_anthropic.queue(sse_reply([frames[0], gate, *frames[1:]]))

    received = b""
    with httpx.Client(timeout=TIMEOUT) as client, client.stream(
            "POST", proxy.url + "/v1/messages", json=messages_body(), headers=API_HEADERS) as response:
        chunks = response.iter_raw()
        for chunk in chunks:  # ends at the latest when the gate gives up (bounded)
            received += chunk
            if b"\n\n" in received:
                break
        held_back = gate.reached.is_set() and not gate.released.is_set() and not gate.timed_out
        gate.open()
        received += b"".join(chunks)

    assert held_back, "the client saw nothing before the mock gave up waiting: the proxy buffered the stream"
    assert received.startswith(frames[0])
    assert received == mock_anthropic.exchanges[0].response_body
    stored = assert_recorded(proxy, mock_anthropic)
    exchange = stored[mock_anthropic.exchanges[0].request_id]
    assert exchange.stream is True
    assert exchange.is_sse
    assert exchange.stop_reason == "end_turn"


def test_first_sse_event_reaches_anthropic_sdk_while_upstream_holds_back(
        mock_anthropic: MockAnthropic, proxy: ProxyProcess) -> None:
    frames = message_events([text_block("hello from a held-back stream")], model=MODEL)
    gate = Gate(timeout=15)
    mock_anthropic.queue(sse_reply([frames[0], gate, *frames[1:]]))

    client = sdk_client(proxy)
    with client.messages.create(model=MODEL, max_tokens=64, stream=True,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        events = iter(stream)
        first = next(events)
        held_back = not gate.released.is_set() and not gate.timed_out
        gate.open()
        rest = list(events)

    assert held_back, "message_start arrived only after the mock gave up waiting: the proxy buffered"
    assert first.type == "message_start"
    assert [e.type for e in rest][-1] == "message_stop"
    assert "".join(e.delta.text for e in rest if e.type == "content_block_delta") == "hello from a held-back stream"
    assert_recorded(proxy, mock_anthropic)


# -- (b) byte-exact passthrough ------------------------------------------------------------------------------


SSE_SPLITS = {
    "one-byte": lambda data: split_every(data, 1),
    "awkward": split_awkwardly,
    "awkward-with-pauses": lambda data: [item for piece in split_awkwardly(data)[:40] for item in
                                         (piece, Pause(0.005))] + split_awkwardly(data)[40:],
    "one-piece": lambda data: [data],
}


@pytest.mark.parametrize("split", SSE_SPLITS)
def test_sse_passes_byte_for_byte_whatever_the_chunking(
        mock_anthropic: MockAnthropic, proxy: ProxyProcess, split: str) -> None:
    stream = odd_sse_stream()
    mock_anthropic.queue(sse_reply(SSE_SPLITS[split](stream)))

    response, received = post_raw(proxy, json.dumps(messages_body()).encode())

    assert response.status_code == 200
    assert received == stream
    assert sse_text(received) == UNICODE_TEXT
    stored = assert_recorded(proxy, mock_anthropic)
    exchange = stored[mock_anthropic.exchanges[0].request_id]
    assert exchange.is_sse
    assert exchange.complete
    assert_answer_text(proxy, exchange, UNICODE_TEXT)


def assert_answer_text(proxy: ProxyProcess, exchange: Any, text: str) -> None:
    """The reassembled answer (Blob {"role": "assistant", "content": [...]}) holds `text`."""
    from ccbridge.storage.models import Blob

    assert exchange.response_message_hash, "answer not reassembled"
    with proxy.db() as db:
        blob = db.get(Blob, exchange.response_message_hash)
        assert blob is not None
        message = json.loads(blob.json_text)
    assert message["role"] == "assistant"
    assert [b["text"] for b in message["content"] if b["type"] == "text"] == [text]


def test_sdk_reads_an_sse_stream_sent_one_byte_at_a_time(mock_anthropic: MockAnthropic,
                                                          proxy: ProxyProcess) -> None:
    mock_anthropic.queue(sse_reply(split_every(odd_sse_stream(), 1)))

    with sdk_client(proxy).messages.stream(model=MODEL, max_tokens=64,
                                           messages=[{"role": "user", "content": "hi"}]) as stream:
        message = stream.get_final_message()

    assert [b.text for b in message.content if b.type == "text"] == [UNICODE_TEXT]
    assert message.usage.cache_read_input_tokens == 13_000
    assert_recorded(proxy, mock_anthropic)


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_json_answer_passes_byte_for_byte(mock_anthropic: MockAnthropic, proxy: ProxyProcess,
                                          framing: str) -> None:
    answer = json.dumps(message_json([text_block(UNICODE_TEXT)], model=MODEL), ensure_ascii=False).encode()
    mock_anthropic.queue(Reply(200, [("content-type", "application/json")], list(split_awkwardly(answer)),
                               framing=framing))  # type: ignore[arg-type]

    message = sdk_client(proxy).messages.create(model=MODEL, max_tokens=64,
                                                messages=[{"role": "user", "content": "hi"}])

    assert [b.text for b in message.content if b.type == "text"] == [UNICODE_TEXT]
    stored = assert_recorded(proxy, mock_anthropic)
    exchange = stored[mock_anthropic.exchanges[0].request_id]
    assert not exchange.stream  # the SDK leaves "stream" out
    assert not exchange.is_sse
    assert exchange.output_tokens == 42
    assert_answer_text(proxy, exchange, UNICODE_TEXT)


@pytest.mark.parametrize("kind", ["sse", "json"])
def test_gzip_answer_reaches_client_encoded_and_is_stored_decoded(
        mock_anthropic: MockAnthropic, proxy: ProxyProcess, kind: str) -> None:
    if kind == "sse":
        plain = odd_sse_stream()
        mock_anthropic.queue(gzipped(sse_reply([plain])))
    else:
        plain = json.dumps(message_json([text_block(UNICODE_TEXT)], model=MODEL)).encode()
        mock_anthropic.queue(gzipped(Reply(200, [("content-type", "application/json")], [plain])))

    response, received = post_raw(proxy, json.dumps(messages_body(stream=kind == "sse")).encode(),
                                  headers={"accept-encoding": "gzip"})

    assert response.headers["content-encoding"] == "gzip"
    assert received == mock_anthropic.exchanges[0].response_body  # still gzip, byte for byte
    assert gzip.decompress(received) == plain
    stored = assert_recorded(proxy, mock_anthropic)  # compares storage with the decoded body
    exchange = stored[mock_anthropic.exchanges[0].request_id]
    assert exchange.response_encoding == "gzip"
    assert_answer_text(proxy, exchange, UNICODE_TEXT)


# -- (c) odd requests pass through unchanged and are recorded -----------------------------------------------


def test_odd_requests_pass_through_and_are_recorded(mock_anthropic: MockAnthropic, proxy: ProxyProcess) -> None:
    rng = random.Random(7)
    binary = rng.randbytes(64 * 1024)
    big_request = json.dumps(messages_body(stream=False, text="x" * (20 * 1024 * 1024))).encode()
    gzip_json = gzip.compress(json.dumps(messages_body(stream=False, text="gzip me")).encode(), mtime=0)
    sent: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("HEAD", "/", b"", {}),
        ("GET", "/v1/no/such/path?x=1&y=%C3%A9", b"", {}),
        ("POST", "/v1/messages?beta=true", b"this is not JSON at all", {}),
        ("POST", "/v1/messages", b'{"model": "claude-opus-5-5", "messages": [{"role": "user", "conte', {}),
        ("POST", "/v1/messages", binary, {"content-type": "application/octet-stream"}),
        ("POST", "/v1/messages?beta=true", big_request, {}),
        ("POST", "/v1/messages", gzip_json, {"content-encoding": "gzip"}),
    ]

    with httpx.Client(timeout=TIMEOUT) as client:
        for method, target, body, extra in sent:
            headers = {**API_HEADERS, "content-type": "application/json", **extra}
            response = client.request(method, proxy.url + target, content=body, headers=headers)
            exchange = mock_anthropic.exchanges[-1]
            assert (exchange.request.method, exchange.request.target) == (method, target)
            assert exchange.request.body == body, f"{method} {target}: body changed on the way"
            assert response.status_code == exchange.status
            if method != "HEAD":
                assert response.content == exchange.response_body

    assert [e.status for e in mock_anthropic.exchanges] == [404, 404, 400, 400, 400, 200, 200]
    stored = assert_recorded(proxy, mock_anthropic)
    by_seq = {e.seq: stored[e.request_id] for e in mock_anthropic.exchanges}
    assert "x=1" in f"{by_seq[2].path}?{by_seq[2].query}"
    assert by_seq[6].request_size == len(big_request)
    assert by_seq[7].request_encoding == "gzip"


def test_big_answer_passes_and_proxy_keeps_serving(mock_anthropic: MockAnthropic, proxy: ProxyProcess) -> None:
    text = "".join(random.Random(3).choices("abcdefghij klmnop ü€", k=1024 * 1024)) * 20
    answer = json.dumps(message_json([text_block(text)], model=MODEL), ensure_ascii=False).encode()
    assert len(answer) > 20 * 1024 * 1024
    mock_anthropic.queue(Reply(200, [("content-type", "application/json")], split_every(answer, 64 * 1024)))

    response, received = post_raw(proxy, json.dumps(messages_body(stream=False)).encode())
    assert response.status_code == 200
    assert received == answer

    after, received_after = post_raw(proxy, json.dumps(messages_body()).encode())
    assert after.status_code == 200
    assert received_after == mock_anthropic.exchanges[1].response_body
    stored = assert_recorded(proxy, mock_anthropic)
    assert stored[mock_anthropic.exchanges[0].request_id].response_size == len(answer)


def test_proxy_still_serves_after_broken_exchanges(mock_anthropic: MockAnthropic, proxy: ProxyProcess) -> None:
    frames = message_events([text_block("this answer breaks off")], model=MODEL)
    mock_anthropic.queue(sse_reply([*frames[:3], Cut()]))

    with pytest.raises(httpx.HTTPError):
        post_raw(proxy, json.dumps(messages_body()).encode())
    response, received = post_raw(proxy, json.dumps(messages_body()).encode())

    assert response.status_code == 200
    assert sse_text(received) == "Hello from the mock Anthropic server! MOCK-HELLO"
    stored = assert_recorded(proxy, mock_anthropic)
    broken = stored[mock_anthropic.exchanges[0].request_id]
    assert not broken.complete
    assert broken.error_kind == "upstream_abort"
    assert stored[mock_anthropic.exchanges[1].request_id].complete



def test_client_abort_mid_stream_is_recorded(mock_anthropic: MockAnthropic, proxy: ProxyProcess) -> None:
    frames = message_events([text_block("nobody reads this to the end")], model=MODEL)
    gate = Gate(timeout=15)
    mock_anthropic.queue(sse_reply([frames[0], gate, *frames[1:]]))

    with httpx.Client(timeout=TIMEOUT) as client, client.stream(
            "POST", proxy.url + "/v1/messages", json=messages_body(), headers=API_HEADERS) as response:
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if b"\n\n" in received:
                break  # leaving the blocks closes the connection mid-stream
    assert received == frames[0]
    [aborted] = mock_anthropic.wait_for(1)
    assert aborted.aborted, "the proxy kept the upstream connection open after the client left"

    stored = assert_recorded(proxy, mock_anthropic)
    exchange = stored[aborted.request_id]
    assert not exchange.complete
    assert exchange.error_kind == "client_abort"


# -- (d) mitmproxy's own features keep working beside the addon --------------------------------------------


def test_flows_saved_with_w_are_readable_and_still_recorded(mock_anthropic: MockAnthropic, tmp_path) -> None:
    """`mitmdump -w` saves each flow with its metadata: what ccbridge keeps per flow must not be in it."""
    saved = tmp_path / "flows.mitm"
    body = {"model": "claude-x", "max_tokens": 8, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with start_proxy(mock_anthropic.url, tmp_path, extra_args=["-w", str(saved)]) as proxy:
        answer = httpx.post(f"{proxy.url}/v1/messages", json=body, timeout=30)
        assert answer.status_code == 200
        assert proxy.stop() == 0
        with saved.open("rb") as file:
            flows = list(FlowReader(file).stream())
        assert [f.request.path for f in flows] == ["/v1/messages"]
        assert flows[0].response is not None and flows[0].response.status_code == 200  # streamed: no body kept
        assert "unserializable" not in proxy.log()
        assert [e.path for e in proxy.exchanges()] == ["/v1/messages"]
