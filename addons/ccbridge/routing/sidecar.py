"""The in-process server that answers routed requests from an OpenAI-compatible provider.

Why a server and not a rewrite of the flow to the provider with the SSE translated in a
`flow.response.stream` callable: the provider must be called with the
official `openai` SDK (typed errors, retries off, its chunk parsing), which owns its HTTP connection, and
mitmproxy cannot stream a response an addon makes up (`Response.make` is sent in one piece). So the routing
addon points the flow at this server, which runs on mitmproxy's own event loop; mitmproxy relays its
chunked answer to Claude Code chunk by chunk, and the capture addon records it like any other exchange.
A server also has what a stream callable lacks: it can still choose the status and body when the provider
fails before the first byte (or fall back to Anthropic), and it can send `ping`s on a timer while the
provider is silent (a callable only runs when bytes arrive).

This module answers; `server.py` speaks HTTP. A client that leaves mid-answer cancels the answer, and with it
the provider request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import h11

from ccbridge.routes import Provider, Route
from ccbridge.routing.provider import (
    PROVIDER_ERRORS,
    AnthropicRelay,
    ProviderClients,
    describe_failure,
    forwardable,
    provider_error_body,
)
from ccbridge.routing.server import HttpServer, ResponseWriter
from ccbridge.routing.translation import AnswerTranslator, answer_translator
from ccbridge.translate import (
    IncompleteAnswer,
    anthropic_error,
    error_for_exception,
    stream_error_for_exception,
    strip_proxy_thinking,
    timeout_error,
)
from ccbridge.translate.errors import error_body

log = logging.getLogger("ccbridge.routing")

TOKEN_HEADER = "x-ccbridge-route"
REGISTRY_TTL = 120.0  # seconds a routed request may take to reach the sidecar
_TOKEN_NAME = TOKEN_HEADER.encode()  # h11 hands header names over lower-cased, as bytes
SSE_HEADERS = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"))
_STATUS_OF_ERROR = {"invalid_request_error": 400, "not_found_error": 404, "rate_limit_error": 429,
                    "timeout_error": 504, "overloaded_error": 529}


@dataclass
class RoutedRequest:
    """A request the routing addon decided to answer from a provider, waiting for the sidecar."""

    route: Route
    provider: Provider
    kwargs: dict[str, Any]  # for `chat.completions.create`, or `responses.create` when provider.api is "responses"
    body: dict[str, Any]  # the Anthropic request as Claude Code sent it
    raw_body: bytes
    stream: bool
    requested_model: str
    upstream_url: str  # where the flow would have gone: the fallback target
    upstream_headers: list[tuple[str, str]]
    info: dict[str, Any]  # the route record (kept with the flow as META_ROUTE), updated in place
    provider_response: bytearray  # the provider's raw answer (META_PROVIDER_RESPONSE)
    input_tokens_estimate: int = 0
    message_id: str = field(default_factory=lambda: "msg_" + secrets.token_hex(12))
    registered_at: float = field(default_factory=time.monotonic)


class Sidecar:
    """Routed requests waiting for mitmproxy, and their answers: provider call, translation, pings, fallback."""

    def __init__(self, *, ping_interval: float, timeout: float) -> None:
        self.clients = ProviderClients()
        self.relay = AnthropicRelay()
        self.ping_interval = ping_interval  # both may change while running (new config)
        self.timeout = timeout
        self._pending: dict[str, RoutedRequest] = {}
        self._server = HttpServer(self._handle)

    # --- lifecycle and registry ---------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        return self._server.port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `port` (0: any free port)."""
        await self._server.start(host, port)

    async def stop(self) -> None:
        """Stop listening; close every connection (answers in progress end as if the client left)."""
        await self._server.stop()
        await self.clients.aclose()
        await self.relay.aclose()

    def register(self, routed: RoutedRequest) -> str:
        """The token that the flow carries to the sidecar in TOKEN_HEADER."""
        now = time.monotonic()
        for token in [t for t, r in self._pending.items() if now - r.registered_at > REGISTRY_TTL]:
            del self._pending[token]
        token = secrets.token_urlsafe(18)
        self._pending[token] = routed
        return token

    def forget(self, token: str | None) -> None:
        if token:
            self._pending.pop(token, None)

    async def _handle(self, request: h11.Request, out: ResponseWriter) -> None:
        """Answer the routed request whose token the request carries."""
        token = next((value for name, value in request.headers if name == _TOKEN_NAME), b"")
        routed = self._pending.pop(token.decode("latin-1"), None)
        if routed is None:
            body = error_body("not_found_error", "ccbridge: unknown or expired routed request")
            await out.json(404, {}, body)
            return
        try:
            await self.answer(routed, out)
        except asyncio.CancelledError:
            routed.info["client_disconnected"] = True  # or we are stopping: either way nobody reads the rest
            raise

    # --- answering ----------------------------------------------------------------------------------

    async def answer(self, routed: RoutedRequest, out: ResponseWriter) -> None:
        """Answer one routed request on `out`, as the Anthropic API would."""
        try:
            result = await self.clients.create(routed.provider, self.timeout, routed.kwargs)
        except asyncio.CancelledError:
            raise
        except PROVIDER_ERRORS as exc:
            routed.provider_response += provider_error_body(exc)
            routed.info["error"] = describe_failure(exc)
            if routed.route.fallback == "anthropic":
                await self.relay_to_anthropic(routed, out)
                return
            status, headers, body = error_for_exception(exc, provider=routed.provider.name, model=routed.route.model)
            await out.json(status, {**headers, **_request_id()}, body)
            return
        except Exception as exc:  # ours, not the provider's: let Anthropic answer (fail-open)
            log.exception("ccbridge: calling %s for %s failed; sending the request to Anthropic instead",
                          routed.provider.name, routed.info.get("agent") or routed.requested_model)
            routed.info["error"] = describe_failure(exc)
            await self.relay_to_anthropic(routed, out)
            return
        if routed.stream:
            await self._stream(routed, result, out)
        else:
            await self._whole(routed, result, out)

    async def _stream(self, routed: RoutedRequest, stream: Any, out: ResponseWriter) -> None:
        translator = _translator(routed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        pending: asyncio.Future[Any] | None = None
        try:
            await out.start(200, [*SSE_HEADERS, *_request_id().items()])
            await out.chunk(translator.start())
            while True:
                pending = asyncio.ensure_future(anext(stream))
                while True:  # ends with a chunk, the stream's end, or the deadline (pings in between)
                    left = deadline - loop.time()
                    if left <= 0:
                        raise TimeoutError
                    done, _ = await asyncio.wait({pending}, timeout=min(self.ping_interval, left))
                    if done:
                        break
                    await out.chunk(translator.ping())
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    break
                finally:
                    pending = None
                routed.provider_response += chunk.to_json(indent=None).encode() + b"\n"
                await out.chunk(translator.feed(chunk.model_dump()))
            await out.chunk(translator.finish())
        except TimeoutError:
            _, _, body = timeout_error(provider=routed.provider.name, model=routed.route.model)
            routed.info["error"] = "timeout"
            await out.chunk(translator.fail(body["error"]["type"], body["error"]["message"]))
        except PROVIDER_ERRORS as exc:
            routed.info["error"] = describe_failure(exc)
            routed.provider_response += provider_error_body(exc) + b"\n"
            error_type, message = stream_error_for_exception(exc, provider=routed.provider.name,
                                                             model=routed.route.model)
            await out.chunk(translator.fail(error_type, message))
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            log.exception("ccbridge: translating the stream of %s failed", routed.provider.name)
            routed.info["error"] = describe_failure(exc)
            await out.chunk(translator.fail("api_error", f"ccbridge could not translate the answer: {exc}"))
        finally:
            if pending is not None:
                pending.cancel()
            with contextlib.suppress(Exception):
                await stream.close()  # cancels the provider request when we stop early
        if translator.error is not None:  # ended by the translator (a failure event, a stream cut short)
            routed.info.setdefault("error", translator.error[1])
        routed.info["stop_reason"] = translator.message["stop_reason"]
        await out.end()

    async def _whole(self, routed: RoutedRequest, completion: Any, out: ResponseWriter) -> None:
        routed.provider_response += completion.to_json(indent=None).encode()
        try:
            message = _translator(routed).whole(completion.model_dump())
        except IncompleteAnswer as exc:
            routed.info["error"] = str(exc)
            status = _STATUS_OF_ERROR.get(exc.error_type, 500)
            await out.json(status, _request_id(), error_body(exc.error_type, str(exc)))
            return
        routed.info["stop_reason"] = message["stop_reason"]
        await out.json(200, _request_id(), message)

    async def relay_to_anthropic(self, routed: RoutedRequest, out: ResponseWriter) -> None:
        """Send the original request where it was going and pass the answer on byte for byte."""
        routed.info["fell_back"] = True
        body, headers = routed.raw_body, routed.upstream_headers
        stripped = strip_proxy_thinking(routed.body)
        if any(a is not b for a, b in zip(stripped["messages"], routed.body.get("messages") or [], strict=False)):
            body = json.dumps(stripped, ensure_ascii=False).encode()
            headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
        try:
            async with self.relay.send(routed.upstream_url, headers, body, self.timeout) as response:
                await out.start(response.status_code, forwardable(response.headers.multi_items()))
                async for piece in response.aiter_raw():
                    await out.chunk(piece)
                await out.end()
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            routed.info["fallback_error"] = describe_failure(exc)
            if out.started:
                raise  # cut the answer: the client sees a broken stream, as it would from Anthropic
            status, headers_out, error = anthropic_error(None, str(exc) or type(exc).__name__, provider="Anthropic")
            await out.json(status, headers_out, error)


def _request_id() -> dict[str, str]:
    return {"request-id": "req_ccbridge_" + secrets.token_hex(12)}


def _translator(routed: RoutedRequest) -> AnswerTranslator:
    return answer_translator(routed.body, routed.provider, model=routed.route.model,
                             requested_model=routed.requested_model, message_id=routed.message_id,
                             input_tokens_estimate=routed.input_tokens_estimate)
