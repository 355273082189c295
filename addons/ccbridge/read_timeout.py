"""Upstream read timeout (`upstream.read_timeout_s`): a flow whose upstream stays silent too long is ended.

mitmproxy 12 has no read timeout and cannot kill a flow in transit (`Flow.kill()` only acts inside a hook,
mitmproxy issue #4711), so a per-flow timer on the event loop does it. Each byte from upstream pushes the
deadline back; when it passes, the proxy answers in the flow's place, the way the Anthropic API reports
errors, by injecting response events into the flow's own HTTP stream (the path mitmproxy uses to inject
WebSocket messages):

- no response headers yet: HTTP 504 with `{"type":"error","error":{"type":"timeout_error",...}}`;
- an SSE stream already under way: an `event: error` frame with that body, then the end of the stream;
- any other body already under way: nothing valid can follow, so the upstream connection is closed and
  mitmproxy ends the flow as an aborted one.

The upstream connection is closed once the flow is over, so it is never reused for another request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy.events import MessageInjected
from mitmproxy.proxy.layers.http import ResponseData, ResponseEndOfMessage, ResponseHeaders

log = logging.getLogger("ccbridge.capture")

DEFAULT_READ_TIMEOUT_S = 600.0  # extended thinking can pause for minutes
CLOSE_WAIT_S = 10.0  # longest wait for the answered flow to finish before its upstream is closed


def timeout_message(seconds: float) -> str:
    return f"ccbridge: no data from upstream for {seconds:g} s (upstream.read_timeout_s); request ended"


def error_body(message: str) -> bytes:
    """An Anthropic-shaped error body of type timeout_error."""
    error = {"type": "error", "error": {"type": "timeout_error", "message": message}}
    return json.dumps(error, separators=(",", ":")).encode()


def sse_error_frame(message: str) -> bytes:
    return b"event: error\ndata: " + error_body(message) + b"\n\n"


class ReadWatch:
    """The timer of one flow: `touch()` on every upstream byte; ends the flow after `seconds` of silence."""

    __slots__ = ("_timer", "expired", "flow", "last", "seconds")

    def __init__(self, flow: http.HTTPFlow, seconds: float) -> None:
        self.flow = flow
        self.seconds = seconds
        self.last = time.monotonic()
        self.expired = False
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(seconds, self._check)

    def touch(self) -> None:
        self.last = time.monotonic()  # cheap: the timer reads it when it fires instead of being re-armed

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        idle = time.monotonic() - self.last
        if idle < self.seconds:
            self._timer = asyncio.get_running_loop().call_later(self.seconds - idle, self._check)
            return
        self._timer = None
        if not self.flow.live:
            return
        self.expired = True
        try:
            end_stalled_flow(self.flow, timeout_message(self.seconds))
        except Exception:
            log.exception("ccbridge: could not end stalled flow %s", self.flow.id)


def end_stalled_flow(flow: http.HTTPFlow, message: str) -> None:
    """Answer the client in the upstream's place (see the module docstring), then close the upstream."""
    proxyserver: Any = ctx.master.addons.get("proxyserver")
    server = flow.server_conn
    if server.alpn != b"h2" and server.connected:
        # The client may send its next request at once: it must get a fresh upstream connection, not this
        # one, which still waits for the stalled response. Marked as no longer writable, it is not reused.
        server.state = ConnectionState.CAN_READ
    response = flow.response
    injected: list[MessageInjected[Any]] = []
    if response is None:
        body = error_body(message)
        made = http.Response.make(504, body, {"content-type": "application/json"})
        injected = [_Headers(flow, made), _Data(flow, body), _End(flow)]
    elif "text/event-stream" in response.headers.get("content-type", "") and "content-length" not in response.headers:
        injected = [_Data(flow, sse_error_frame(message)), _End(flow)]
    for event in injected:
        proxyserver.inject_event(event)
    task = asyncio.get_running_loop().create_task(_close_upstream(flow, proxyserver, wait=bool(injected)))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()  # keeps the close tasks referenced until they finish


async def _close_upstream(flow: http.HTTPFlow, proxyserver: Any, wait: bool) -> None:
    # Closing before the stream is finished would reach it as an upstream error and spoil the answer.
    deadline = time.monotonic() + CLOSE_WAIT_S
    while wait and flow.live and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    handler = proxyserver.connections.get(flow.client_conn.id)
    server = flow.server_conn
    # An HTTP/2 upstream carries other streams too; its stalled stream is dropped but the connection kept.
    if handler is not None and server in handler.transports and server.alpn != b"h2":
        handler.close_connection(server)


# Events that mitmproxy routes straight to the flow's HTTP stream (as MessageInjected) and that the stream
# handles like the upstream's own (as Response* events).


class _Headers(ResponseHeaders, MessageInjected[None]):
    def __init__(self, flow: http.HTTPFlow, response: http.Response) -> None:
        self.flow, self.message, self.stream_id, self.response, self.end_stream = flow, None, 0, response, False


class _Data(ResponseData, MessageInjected[None]):
    def __init__(self, flow: http.HTTPFlow, data: bytes) -> None:
        self.flow, self.message, self.stream_id, self.data = flow, None, 0, data


class _End(ResponseEndOfMessage, MessageInjected[None]):
    def __init__(self, flow: http.HTTPFlow) -> None:
        self.flow, self.message, self.stream_id = flow, None, 0
