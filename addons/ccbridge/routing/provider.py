"""The calls a routed request makes: the OpenAI-compatible provider, and Anthropic when falling back.

One `AsyncOpenAI` client per provider, built on first use on mitmproxy's loop, with `max_retries=0`:
Claude Code retries by itself, and SDK retries on top would multiply every failed turn.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai

from ccbridge.routes import Provider

# Errors that are the provider's (or the network's), as opposed to bugs of ours.
PROVIDER_ERRORS: tuple[type[BaseException], ...] = (openai.APIError, httpx.HTTPError)
# Per-hop headers (RFC 9110 7.6.1) plus the ones the HTTP client sets itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})


class ProviderClients:
    """The SDK clients, one per provider (and timeout); `aclose()` closes them all."""

    def __init__(self) -> None:
        self._clients: dict[tuple[Any, ...], openai.AsyncOpenAI] = {}

    def client(self, provider: Provider, timeout: float) -> openai.AsyncOpenAI:
        key = (provider.name, provider.base_url, provider.api_key, tuple(sorted(provider.headers.items())), timeout)
        client = self._clients.get(key)
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=provider.base_url,
                api_key=provider.api_key or "unused",  # local servers often need none, the SDK insists on one
                max_retries=0,
                timeout=timeout,
                default_headers=dict(provider.headers) or None,
            )
            self._clients[key] = client
        return client

    async def create(self, provider: Provider, timeout: float, kwargs: dict[str, Any]) -> Any:
        """Call the provider with translated `kwargs`: a stream when they ask for one, else the whole answer."""
        client = self.client(provider, timeout)
        if provider.api == "responses":
            return await client.responses.create(**kwargs)
        return await client.chat.completions.create(**kwargs)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


def provider_error_body(exc: BaseException) -> bytes:
    """What the provider answered when it failed (its error body), else a description of the failure."""
    response = getattr(exc, "response", None)
    if isinstance(exc, openai.APIStatusError) and response is not None:
        try:
            return bytes(response.content)
        except Exception:  # a streamed error body that was never read
            pass
    body = getattr(exc, "body", None)
    detail = body if body is not None else (str(exc) or type(exc).__name__)
    return json.dumps({"exception": type(exc).__name__, "detail": detail}, default=str).encode()


def describe_failure(exc: BaseException) -> str:
    """A failure in one line, with the HTTP status when the provider answered one."""
    status = getattr(exc, "status_code", None)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__} (HTTP {status}): {text}" if status else f"{type(exc).__name__}: {text}"


def forwardable(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The end-to-end headers of a message, without the per-hop ones."""
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


class AnthropicRelay:
    """Sends an original request on to Anthropic and hands back the raw, still-encoded response."""

    def __init__(self) -> None:
        # trust_env=False: a proxy variable in mitmdump's environment may point back at mitmdump itself.
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)

    @asynccontextmanager
    async def send(self, url: str, headers: Iterable[tuple[str, str]], body: bytes,
                   timeout: float) -> AsyncIterator[httpx.Response]:
        request = self._client.build_request("POST", url, headers=forwardable(headers), content=body,
                                             timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)))
        response = await self._client.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
