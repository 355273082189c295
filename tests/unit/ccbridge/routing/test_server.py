"""The routing server's HTTP layer on a real loopback socket, driven by raw bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import h11
import pytest

from ccbridge.routing import server as server_module
from ccbridge.routing.server import HttpServer, ResponseWriter

GUARD = 10.0  # seconds: only so that a broken server fails the test instead of hanging it

Handler = Callable[[h11.Request, ResponseWriter], Awaitable[None]]


def post(path: str = "/v1/messages", body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (b"POST %b HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n%b\r\n%b" % (path.encode(), len(body), extra, body))


async def hello(request: h11.Request, out: ResponseWriter) -> None:
    await out.whole(200, [("content-type", "text/plain")], b"hello " + request.target)


class Client:
    """One raw connection, with h11 reading the responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def event(self) -> h11.Event:
        """The next response event (head, a piece of body, its end); ConnectionClosed at EOF."""
        async with asyncio.timeout(GUARD):
            while True:
                event = self.h11.next_event()
                if event is not h11.NEED_DATA:
                    return event
                self.h11.receive_data(await self.reader.read(65536))

    async def response(self) -> tuple[h11.Response, bytes]:
        head = await self.event()
        assert isinstance(head, h11.Response), head
        body = b""
        while not isinstance(event := await self.event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data), event
            body += event.data
        return head, body

    def next_cycle(self) -> None:
        """Tell the client-side h11 about the request we sent as raw bytes."""
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        self.h11.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")]))
        self.h11.send(h11.EndOfMessage())

    async def at_eof(self) -> bool:
        async with asyncio.timeout(GUARD):
            return await self.reader.read() == b""


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Callable[[], Awaitable[Client]]]]]:
    servers: list[HttpServer] = []
    clients: list[Client] = []

    async def start(handler: Handler) -> Callable[[], Awaitable[Client]]:
        server = HttpServer(handler)
        await server.start()
        servers.append(server)

        async def connect() -> Client:
            client = Client(*await asyncio.open_connection("127.0.0.1", server.port))
            clients.append(client)
            return client

        return connect

    yield start
    for client in clients:
        client.writer.close()
    for server in servers:
        await server.stop()


async def raw_response(client: Client) -> bytes:
    async with asyncio.timeout(GUARD):
        return await client.reader.read()  # to EOF


async def test_a_malformed_request_line_is_answered_400_and_the_connection_closed(serve) -> None:
    called: list[h11.Request] = []

    async def handler(request: h11.Request, out: ResponseWriter) -> None:
        called.append(request)

    client = await (await serve(handler))()
    await client.send(b"HELLO THERE\r\n\r\n")
    answer = await raw_response(client)  # read to EOF: the server closed the connection
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in answer.lower()
    assert called == []


async def test_a_head_over_the_limit_is_answered_431(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "MAX_HEAD", 4096)
    client = await (await serve(hello))()
    # a head still unfinished when it passes the limit (h11 accepts a longer one that arrives complete)
    await client.send(b"POST / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 8192)
    answer = await raw_response(client)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_head_larger_than_h11s_default_limit_is_still_read(serve) -> None:
    client = await (await serve(hello))()
    client.next_cycle()
    await client.send(post(extra=b"x-big: " + b"a" * 100_000 + b"\r\n"))
    head, body = await client.response()
    assert head.status_code == 200 and body == b"hello /v1/messages"


async def test_two_requests_are_answered_on_one_kept_alive_connection(serve) -> None:
    client = await (await serve(hello))()
    for path in ("/first", "/second"):
        client.next_cycle()
        await client.send(post(path, body=b'{"a": 1}'))
        head, body = await client.response()
        assert head.status_code == 200 and body == b"hello " + path.encode()
        assert (b"connection", b"close") not in head.headers


async def test_a_request_sent_while_the_previous_is_answered_waits_its_turn(serve) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(request: h11.Request, out: ResponseWriter) -> None:
        if request.target == b"/slow":
            started.set()
            await release.wait()
        await out.whole(200, [], request.target)

    client = await (await serve(handler))()
    await client.send(post("/slow"))
    async with asyncio.timeout(GUARD):
        await started.wait()
    await client.send(post("/next"))
    release.set()
    answers = []
    for _ in range(2):
        client.next_cycle()
        answers.append((await client.response())[1])
    assert answers == [b"/slow", b"/next"]


async def test_a_streamed_answer_arrives_chunk_by_chunk(serve) -> None:
    release = asyncio.Event()
    ended = asyncio.Event()

    async def handler(request: h11.Request, out: ResponseWriter) -> None:
        await out.start(200, [("content-type", "text/event-stream")])
        await out.chunk(b"event: first\n\n")
        await release.wait()
        await out.chunk(b"event: second\n\n")
        await out.end()
        ended.set()

    client = await (await serve(handler))()
    client.next_cycle()
    await client.send(post())
    head = await client.event()
    assert isinstance(head, h11.Response) and head.status_code == 200
    assert (b"transfer-encoding", b"chunked") in head.headers
    first = await client.event()
    assert isinstance(first, h11.Data) and first.data == b"event: first\n\n"
    assert not ended.is_set()  # the first chunk came while the handler was still held back
    release.set()
    second = await client.event()
    assert isinstance(second, h11.Data) and second.data == b"event: second\n\n"
    assert isinstance(await client.event(), h11.EndOfMessage)


async def test_a_client_that_leaves_mid_answer_cancels_the_handler(serve) -> None:
    cancelled = asyncio.Event()
    never = asyncio.Event()

    async def handler(request: h11.Request, out: ResponseWriter) -> None:
        await out.start(200, [])
        await out.chunk(b"partial")
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = await (await serve(handler))()
    client.next_cycle()
    await client.send(post())
    assert isinstance(await client.event(), h11.Response)
    assert isinstance(await client.event(), h11.Data)
    client.writer.close()
    async with asyncio.timeout(GUARD):
        await cancelled.wait()


async def test_a_handler_that_fails_closes_the_connection(serve, caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: h11.Request, out: ResponseWriter) -> None:
        await out.start(200, [])
        await out.chunk(b"partial")
        raise RuntimeError("broken")

    client = await (await serve(handler))()
    client.next_cycle()
    await client.send(post())
    assert isinstance(await client.event(), h11.Response)
    assert isinstance(await client.event(), h11.Data)
    with pytest.raises(h11.RemoteProtocolError):  # the body was cut before its last chunk
        await client.event()
    assert [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]


async def test_expect_100_continue_gets_its_interim_response(serve) -> None:
    client = await (await serve(hello))()
    await client.send(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n")
    async with asyncio.timeout(GUARD):
        interim = await client.reader.readuntil(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 ")
    await client.send(b"{}")
    async with asyncio.timeout(GUARD):
        final = await client.reader.readuntil(b"hello /v1/messages")
    assert final.startswith(b"HTTP/1.1 200 ")


async def test_an_idle_connection_is_closed(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 0.05)
    client = await (await serve(hello))()
    assert await client.at_eof()


async def test_stopping_ends_an_answer_in_progress() -> None:
    cancelled = asyncio.Event()

    async def handler(request: h11.Request, out: ResponseWriter) -> None:
        await out.start(200, [])
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = HttpServer(handler)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(post())
    await writer.drain()
    async with asyncio.timeout(GUARD):
        await reader.readuntil(b"\r\n\r\n")
        await server.stop()
    assert cancelled.is_set()
    assert server.port is None
    writer.close()
