"""A mock of the Anthropic Messages API on 127.0.0.1:<free port>, run in background threads.

The server speaks HTTP/1.1 by hand on raw sockets so that a test controls every byte it answers with and
where the chunks break. It records each request as received and each answer as sent (the entity bytes and
the wire bytes), so tests can compare what passed through the proxy byte for byte.

By default it answers like the real API: `POST /v1/messages` with an SSE text answer (or JSON when the
request has no `"stream": true`), `POST /v1/messages/count_tokens` with a token count, `HEAD /` and any
other path with 404. Tests replace that with `mock.handler = fn` (fn: MockRequest -> Reply) or queue
answers with `mock.queue(reply, ...)`. Authentication is ignored. For load with big bodies,
`MockAnthropic(keep_bodies=False)` keeps only their SHA-256 (`MockRequest.sha256`, `MockExchange.response_sha256`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import itertools
import json
import select
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

MOCK_TEXT = "Hello from the mock Anthropic server! MOCK-HELLO"
MAX_WAIT = 30.0  # upper bound for every pause, gate and stall, in seconds
IDLE_TIMEOUT = 120.0  # a keep-alive connection that stays silent this long is closed


# -- what a test can put into an answer's body, besides bytes --------------------------------------------


@dataclass
class Pause:
    """Wait this long before sending the next chunk."""

    seconds: float


@dataclass
class Gate:
    """Hold the rest of the body back until the test calls `open()` (bounded by `timeout`)."""

    timeout: float = MAX_WAIT
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    timed_out: bool = False

    def open(self) -> None:
        self.released.set()

    def wait_reached(self, timeout: float = MAX_WAIT) -> bool:
        return self.reached.wait(timeout)


@dataclass
class Cut:
    """Close the connection abruptly here (no chunked terminator, fewer bytes than announced)."""


@dataclass
class Stall:
    """Send nothing more and keep the connection open, for at most `seconds` (then close it)."""

    seconds: float = MAX_WAIT


BodyItem = bytes | Pause | Gate | Cut | Stall


@dataclass
class Reply:
    """One answer. Each bytes item of `body` is written with its own send (one HTTP chunk if chunked).

    framing: "chunked" (Transfer-Encoding: chunked), "length" (Content-Length of all bytes items) or
    "close" (neither; the body ends when the mock closes the connection).
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[BodyItem] = field(default_factory=list)
    framing: Literal["chunked", "length", "close"] = "length"
    reason: str = ""
    held: float = 0.0  # seconds of silence before the status line (bounded by MAX_WAIT; the connection stays open)

    @property
    def body_bytes(self) -> bytes:
        return b"".join(item for item in self.body if isinstance(item, bytes))


# -- records ------------------------------------------------------------------------------------------------


@dataclass
class MockRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes  # b"" once answered when the mock keeps no bodies
    http_version: str = "1.1"
    sha256: str = ""  # of the body as received

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    def json(self) -> Any:
        """The body (gzip-decoded if so encoded) as JSON, or None when it is not JSON."""
        try:
            body = gzip.decompress(self.body) if self.header("content-encoding") == "gzip" else self.body
            return json.loads(body)
        except (ValueError, OSError, EOFError):
            return None


@dataclass
class MockExchange:
    """A request and what the mock sent back, byte for byte."""

    seq: int
    request: MockRequest
    request_id: str
    status: int | None = None
    response_body: bytes = b""  # entity bytes as sent (still gzip-encoded when the answer was)
    response_wire: bytes = b""  # everything written to the socket for this answer
    complete: bool = False  # the whole answer was written
    cut: bool = False  # the mock broke the connection off on purpose
    aborted: bool = False  # writing failed: the peer closed the connection
    response_hash: Any = field(default_factory=hashlib.sha256, repr=False)  # of the entity bytes sent

    @property
    def response_sha256(self) -> str:
        """The hash of the entity bytes sent (kept also when the mock keeps no bodies)."""
        return self.response_hash.hexdigest()

    @property
    def finished(self) -> bool:
        return self.complete or self.cut or self.aborted

    @property
    def response_decoded(self) -> bytes:
        """The entity with any gzip content-encoding removed (what storage should hold)."""
        head = self.response_wire.split(b"\r\n\r\n", 1)[0].lower()
        if b"\r\ncontent-encoding: gzip" in head:
            return gzip.decompress(self.response_body)
        return self.response_body


# -- building answers -------------------------------------------------------------------------------------


def sse_event(event: str, data: dict[str, Any] | str) -> bytes:
    """One SSE frame as the Anthropic API writes it: `event:` line, `data:` line, blank line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


def usage(input_tokens: int = 2_095, output_tokens: int = 1, cache_read: int = 13_000,
          cache_creation: int = 1_536) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_creation, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_01Mock{next(_ids):018d}"


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_use_block(name: str, tool_input: dict[str, Any], tool_id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id or new_id("toolu"), "name": name, "input": tool_input}


def message_events(content: list[dict[str, Any]], *, model: str = "claude-opus-5-5",
                   stop_reason: str | None = None, message_id: str | None = None,
                   output_tokens: int = 42, piece: int = 12) -> list[bytes]:
    """The SSE frames of one assistant message; text and tool input arrive in deltas of `piece` chars."""
    stop_reason = stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")
    start_usage = usage(output_tokens=1)
    frames = [sse_event("message_start", {"type": "message_start", "message": {
        "id": message_id or new_id("msg"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
    for index, block in enumerate(content):
        if block["type"] == "text":
            start, key, delta_type, payload = {"type": "text", "text": ""}, "text", "text_delta", block["text"]
        else:
            start = {**block, "input": {}}
            key, delta_type = "partial_json", "input_json_delta"
            payload = json.dumps(block["input"], ensure_ascii=False)
        frames.append(sse_event("content_block_start",
                                {"type": "content_block_start", "index": index, "content_block": start}))
        if index == 0:
            frames.append(sse_event("ping", {"type": "ping"}))
        for i in range(0, len(payload), piece):
            frames.append(sse_event("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": delta_type, key: payload[i:i + piece]}}))
        frames.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    end_usage = {k: v for k, v in start_usage.items() if k not in ("cache_creation", "service_tier")}
    frames.append(sse_event("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {**end_usage, "output_tokens": output_tokens}}))
    frames.append(sse_event("message_stop", {"type": "message_stop"}))
    return frames


def message_json(content: list[dict[str, Any]], *, model: str = "claude-opus-5-5",
                 stop_reason: str | None = None) -> dict[str, Any]:
    stop_reason = stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": usage(output_tokens=42)}


def sse_reply(frames: Iterable[BodyItem], headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """A streamed answer, chunked, one send per item (an SSE frame, a piece of one, or a control)."""
    return Reply(200, [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"),
                       *headers], list(frames), framing="chunked")


def json_reply(obj: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    return Reply(status, [("content-type", "application/json"), *headers],
                 [json.dumps(obj, ensure_ascii=False).encode()], framing="length")


def error_reply(status: int, error_type: str, message: str) -> Reply:
    return json_reply({"type": "error", "error": {"type": error_type, "message": message}}, status)


def text_reply(request: MockRequest, text: str = MOCK_TEXT) -> Reply:
    """A text answer shaped like the request asked for: SSE when it said `"stream": true`, else JSON."""
    body = request.json()
    model = body.get("model", "claude-opus-5-5") if isinstance(body, dict) else "claude-opus-5-5"
    if isinstance(body, dict) and body.get("stream"):
        return sse_reply(message_events([text_block(text)], model=model))
    return json_reply(message_json([text_block(text)], model=model))


def tool_use_reply(request: MockRequest, name: str, tool_input: dict[str, Any], preamble: str = "") -> Reply:
    """An SSE answer that calls one tool (after an optional text block)."""
    body = request.json()
    model = body.get("model", "claude-opus-5-5") if isinstance(body, dict) else "claude-opus-5-5"
    blocks = [text_block(preamble)] if preamble else []
    return sse_reply(message_events([*blocks, tool_use_block(name, tool_input)], model=model))


def has_tool_result(body: Any) -> bool:
    """Whether a Messages request carries a tool_result (the parent's turn after its Agent call)."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    return any(isinstance(m.get("content"), list) and any(b.get("type") == "tool_result" for b in m["content"])
               for m in messages)


def delegating(prompt: str, subagent_text: str, final_text: str, *, background: bool = False,
               subagent_type: str = "code-reviewer") -> Callable[[MockRequest], Reply]:
    """A handler for a run with one subagent: the main thread calls the Agent tool with `prompt`, the
    subagent (the request with `x-claude-code-agent-id`) gets `subagent_text`, and the main thread's turn
    that carries the tool_result gets `final_text`."""

    def handler(request: MockRequest) -> Reply:
        if request.method != "POST" or request.path != "/v1/messages":
            return default_reply(request)
        if request.header("x-claude-code-agent-id"):
            return text_reply(request, subagent_text)
        if has_tool_result(request.json()):
            return text_reply(request, final_text)
        return tool_use_reply(request, "Agent", {"description": "Review hello.py", "prompt": prompt,
                                                 "subagent_type": subagent_type, "run_in_background": background})

    return handler


def split_every(data: bytes, size: int) -> list[bytes]:
    """`data` cut into pieces of `size` bytes (the last may be shorter)."""
    return [data[i:i + size] for i in range(0, len(data), size)]


def gzipped(reply: Reply, piece: int = 7) -> Reply:
    """The same answer gzip-encoded, sent in pieces of `piece` bytes (controls in the body are dropped)."""
    encoded = gzip.compress(reply.body_bytes, mtime=0)
    headers = [(k, v) for k, v in reply.headers if k.lower() != "content-encoding"]
    return Reply(reply.status, [*headers, ("content-encoding", "gzip")], split_every(encoded, piece),
                 framing=reply.framing)


def default_reply(request: MockRequest) -> Reply:
    """What the real API would answer (roughly), ignoring authentication."""
    if request.method == "HEAD":
        return Reply(404, [("content-type", "text/plain")], [], framing="length")
    if request.method == "POST" and request.path == "/v1/messages/count_tokens":
        return json_reply({"input_tokens": max(1, len(request.body) // 4)})
    if request.method == "POST" and request.path == "/v1/messages":
        if not isinstance(request.json(), dict):
            return error_reply(400, "invalid_request_error", "The request body is not valid JSON.")
        return text_reply(request)
    return error_reply(404, "not_found_error", f"Not found: {request.method} {request.path}")


# -- the server ----------------------------------------------------------------------------------------------


class _ConnectionClosed(Exception):
    pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a connection thread never keeps the test process alive
    request_queue_size = 512  # the default backlog of 5 drops connections under concurrent load


class MockAnthropic:
    """The mock server. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, handler: Callable[[MockRequest], Reply] | None = None, keep_bodies: bool = True) -> None:
        self.handler: Callable[[MockRequest], Reply] = handler or default_reply
        self.keep_bodies = keep_bodies
        self._queued: deque[Reply] = deque()
        self._exchanges: list[MockExchange] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> MockAnthropic:
        mock = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                mock._serve_connection(self.request)

        server = _Server(("127.0.0.1", 0), Handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="mock-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MockAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what tests use
    @property
    def port(self) -> int:
        assert self._server is not None, "mock not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests (other than HEAD) with these, in order, before the handler."""
        with self._lock:
            self._queued.extend(replies)

    @property
    def exchanges(self) -> list[MockExchange]:
        with self._lock:
            return list(self._exchanges)

    @property
    def requests(self) -> list[MockRequest]:
        return [e.request for e in self.exchanges]

    def by_request_id(self, request_id: str) -> MockExchange:
        return next(e for e in self.exchanges if e.request_id == request_id)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[MockExchange]:
        """Wait until `count` answers are finished (sent, cut or aborted); return all exchanges."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                done = [e for e in self._exchanges if e.finished]
                remaining = deadline - time.monotonic()
                if len(done) >= count or remaining <= 0:
                    return list(self._exchanges)
                self._changed.wait(remaining)

    # serving
    def _serve_connection(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IDLE_TIMEOUT)
        with self._lock:
            self._sockets.add(sock)
        buffer = bytearray()
        try:
            while not self._stopping.is_set():
                request = self._read_request(sock, buffer)
                if request is None:
                    return
                if not self._answer(sock, request):
                    return
        except (OSError, ValueError, _ConnectionClosed):
            return
        finally:
            with self._lock:
                self._sockets.discard(sock)

    def _recv(self, sock: socket.socket, buffer: bytearray) -> None:
        data = sock.recv(256 * 1024)
        if not data:
            raise _ConnectionClosed
        buffer += data

    def _read_request(self, sock: socket.socket, buffer: bytearray) -> MockRequest | None:
        try:
            while b"\r\n\r\n" not in buffer:
                if len(buffer) > 1024 * 1024:
                    raise _ConnectionClosed
                self._recv(sock, buffer)
        except _ConnectionClosed:
            return None
        head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
        del buffer[: len(head) + 4]
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in header_lines)]
        lowered = {k.lower(): v for k, v in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            body = self._read_chunked(sock, buffer)
        else:
            length = int(lowered.get("content-length", "0"))
            while len(buffer) < length:
                self._recv(sock, buffer)
            body = bytes(buffer[:length])
            del buffer[:length]
        return MockRequest(method, target, headers, body, version.removeprefix("HTTP/"),
                           hashlib.sha256(body).hexdigest())

    def _read_chunked(self, sock: socket.socket, buffer: bytearray) -> bytes:
        body = bytearray()
        while True:
            while b"\r\n" not in buffer:
                self._recv(sock, buffer)
            size_line, _, _ = bytes(buffer).partition(b"\r\n")
            del buffer[: len(size_line) + 2]
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in buffer:  # no trailers expected: just the final CRLF
                    self._recv(sock, buffer)
                del buffer[: buffer.index(b"\r\n") + 2]
                return bytes(body)
            while len(buffer) < size + 2:
                self._recv(sock, buffer)
            body += buffer[:size]
            del buffer[: size + 2]

    def _answer(self, sock: socket.socket, request: MockRequest) -> bool:
        """Send the answer; False when the connection must be closed afterwards."""
        with self._lock:
            queued = self._queued.popleft() if self._queued and request.method != "HEAD" else None
            exchange = MockExchange(len(self._exchanges) + 1, request, f"req_mock_{len(self._exchanges) + 1:06d}")
            self._exchanges.append(exchange)
        try:
            reply = queued or self.handler(request)
        except Exception as exc:  # a broken test handler shows up as a 500 naming the error
            reply = error_reply(500, "api_error", f"mock handler failed: {exc!r}")
        if not self.keep_bodies:
            request.body = b""
        try:
            return self._send_reply(sock, exchange, reply)
        except OSError:
            with self._changed:
                exchange.aborted = True
                self._changed.notify_all()
            return False

    def _send_reply(self, sock: socket.socket, exchange: MockExchange, reply: Reply) -> bool:
        request = exchange.request
        exchange.status = reply.status
        keep_alive = reply.framing != "close" and (request.header("connection") or "").lower() != "close"

        if reply.held:
            self._hold(sock, reply.held, self._stopping)
        headers = [*reply.headers, ("request-id", exchange.request_id)]
        if reply.framing == "chunked":
            headers.append(("transfer-encoding", "chunked"))
        elif reply.framing == "length":
            headers.append(("content-length", str(len(reply.body_bytes))))
        headers.append(("connection", "keep-alive" if keep_alive else "close"))
        reason = reply.reason or _REASONS.get(reply.status, "Unknown")
        head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self._send(sock, exchange, head.encode("latin-1"), entity=False)

        for item in [] if request.method == "HEAD" else reply.body:
            if isinstance(item, bytes):
                if not item:
                    continue  # an empty chunk would end a chunked body
                framed = b"%x\r\n%s\r\n" % (len(item), item) if reply.framing == "chunked" else item
                self._send(sock, exchange, framed, entity=True, entity_bytes=item)
            elif isinstance(item, Pause):
                self._hold(sock, item.seconds, self._stopping)
            elif isinstance(item, Gate):
                item.reached.set()
                item.timed_out = not self._hold(sock, item.timeout, item.released)
            elif isinstance(item, (Cut, Stall)):
                if isinstance(item, Stall):
                    self._hold(sock, item.seconds, self._stopping)
                with self._changed:
                    exchange.cut = True
                    self._changed.notify_all()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return False
        if reply.framing == "chunked" and request.method != "HEAD":
            self._send(sock, exchange, b"0\r\n\r\n", entity=False)
        with self._changed:
            exchange.complete = True
            self._changed.notify_all()
        return keep_alive

    def _hold(self, sock: socket.socket, seconds: float, until: threading.Event) -> bool:
        """Wait (at most MAX_WAIT) until `until` is set; True if it was. Raises OSError if the peer hangs up."""
        deadline = time.monotonic() + min(seconds, MAX_WAIT)
        while not until.wait(max(0.0, min(0.02, deadline - time.monotonic()))):
            if self._stopping.is_set() or time.monotonic() >= deadline:
                return False
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and not sock.recv(1, socket.MSG_PEEK):
                raise ConnectionAbortedError("the peer closed the connection")
        return True

    def _send(self, sock: socket.socket, exchange: MockExchange, data: bytes, *, entity: bool,
              entity_bytes: bytes = b"") -> None:
        # recorded before sending: a client may read the bytes and look at the record at once
        if entity:
            exchange.response_hash.update(entity_bytes)
        if self.keep_bodies:
            exchange.response_wire += data
            if entity:
                exchange.response_body += entity_bytes
        sock.sendall(data)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large",
            429: "Too Many Requests", 500: "Internal Server Error", 529: "Overloaded"}

