"""The routing server's HTTP/1.1: connections from mitmproxy on a loopback port, spoken with `h11`.

It runs on the caller's event loop (mitmproxy's) and installs nothing process-wide; uvicorn's
`Server.serve()` would install signal handlers that fight mitmproxy's own Ctrl-C/SIGTERM handling.
A request's body is read and dropped: what a handler needs is in the sidecar's registry, keyed by a header.

Connections are kept alive (a `Connection: close` here would close Claude Code's connection too). While
a response is being written mitmproxy sends nothing, so the connection closing then means the client left,
and the handler is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import h11

log = logging.getLogger("ccbridge.routing")

IDLE_TIMEOUT = 300.0  # a connection that does not complete a request for this long is closed
MAX_HEAD = 1024 * 1024  # request line and headers; a longer head is answered 431
MAX_REQUESTS_PER_CONNECTION = 100_000
READ_SIZE = 65536


class ResponseWriter:
    """Writes the response to one request: whole, or chunked with each piece sent at once."""

    def __init__(self, connection: h11.Connection, writer: asyncio.StreamWriter) -> None:
        self._connection = connection
        self._writer = writer

    @property
    def started(self) -> bool:
        """The status line is sent: from here on an error can only cut the response."""
        return self._connection.our_state is not h11.SEND_RESPONSE

    @property
    def finished(self) -> bool:
        return self._connection.our_state in (h11.DONE, h11.MUST_CLOSE)

    async def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """Send the head of a response whose body follows in `chunk`s (chunked transfer encoding)."""
        await self._send(_response(status, headers))

    async def chunk(self, data: bytes) -> None:
        if data:  # an empty chunk would end the body
            await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def whole(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        await self._send(_response(status, [*headers, ("content-length", str(len(body)))]),
                         h11.Data(data=body), h11.EndOfMessage())

    async def json(self, status: int, headers: Mapping[str, str], data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False).encode()
        extra = [(k, v) for k, v in headers.items() if k.lower() != "content-type"]
        await self.whole(status, [("content-type", "application/json"), *extra], body)

    async def _send(self, *events: h11.Event) -> None:
        for event in events:
            self._writer.write(self._connection.send(event) or b"")
        await self._writer.drain()


Handler = Callable[[h11.Request, ResponseWriter], Awaitable[None]]


class HttpServer:
    """Serves `handler` on a loopback port: keep-alive, idle timeout, head limit, cancel on disconnect."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int | None:
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    async def stop(self) -> None:
        """Stop listening; close every connection (responses in progress end as if the client left)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections.values()):
            writer.close()
        tasks = list(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=5)
            for task in late:
                task.cancel()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection from mitmproxy: requests one after another, each answered in full."""
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                try:
                    async with asyncio.timeout(IDLE_TIMEOUT):
                        request = await _next_request(connection, reader, writer)
                except TimeoutError:
                    return
                if request is None or not await self._respond(request, connection, reader, writer):
                    return
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return  # `Connection: close` from either side, or an HTTP/1.0 client
                connection.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await _refuse(connection, writer, exc)
        except (ConnectionError, asyncio.CancelledError):
            pass  # mitmproxy went away, or we are stopping; nobody waits for this task's result
        except Exception:
            log.exception("ccbridge: the routing server failed on a connection")
        finally:
            del self._connections[task]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, request: h11.Request, connection: h11.Connection, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:
        """Run the handler, cancelled if the client leaves meanwhile; whether the connection may carry on."""
        out = ResponseWriter(connection, writer)
        handling = asyncio.ensure_future(self._handler(request, out))
        watching = asyncio.ensure_future(_until_closed(connection, reader))
        try:
            await asyncio.wait({handling, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            handling.cancel()  # no-op when it has finished
            # the handler's own clean-up (closing the provider's stream) finishes before the connection closes
            await asyncio.wait({handling, watching})
        if handling.cancelled():
            return False
        error = handling.exception()
        if error is not None:
            if not isinstance(error, ConnectionError):
                log.error("ccbridge: routed request failed in the sidecar", exc_info=error)
            return False
        return out.finished


async def _next_request(connection: h11.Connection, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> h11.Request | None:
    """Read one request to its end, dropping its body; None when the client closed the connection."""
    request: h11.Request | None = None
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            if connection.they_are_waiting_for_100_continue:
                writer.write(connection.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            connection.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _until_closed(connection: h11.Connection, reader: asyncio.StreamReader) -> None:
    """Return when the client closes the connection; what it sends meanwhile waits for the next request."""
    while data := await reader.read(READ_SIZE):
        connection.receive_data(data)
        if len(connection.trailing_data[0]) > MAX_HEAD:
            return  # not mitmproxy's behaviour: stop serving it
    connection.receive_data(b"")


async def _refuse(connection: h11.Connection, writer: asyncio.StreamWriter, exc: h11.RemoteProtocolError) -> None:
    """Answer a request we cannot read with the status h11 suggests (400, or 431 for a long head)."""
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return  # a response is under way: the connection can only be cut
    body = f"ccbridge: cannot read the request: {exc}\n".encode()
    status = exc.error_status_hint
    headers = [("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))),
               ("connection", "close")]
    with contextlib.suppress(Exception):
        for event in (_response(status, headers), h11.Data(data=body), h11.EndOfMessage()):
            writer.write(connection.send(event) or b"")
        await writer.drain()


def _response(status: int, headers: Iterable[tuple[str, str]]) -> h11.Response:
    encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return h11.Response(status_code=status, headers=encoded, reason=_reason(status))


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Overloaded" if status == 529 else b"Unknown"
