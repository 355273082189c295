"""Another model's answer to a recorded Anthropic request: what `ccbridge replay` (and a shadow route) stores.

`ask` sends the request to one route, streamed so the time to the first byte is known, and returns the
`AlternateAnswer` columns. A provider of config.yaml is called as the routing sidecar calls it (the same
translation and SDK clients); the route `anthropic/<model>` sends the original body, with the model replaced,
to the Anthropic API with $ANTHROPIC_API_KEY ($ANTHROPIC_BASE_URL may point elsewhere). Nothing here prints or
reads the command line: the shadow route calls `ask` from inside the proxy.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ccbridge.errors import ConfigError
from ccbridge.prices import ANTHROPIC, Tokens, cost_usd
from ccbridge.routes import Provider, Route, RoutingSettings
from ccbridge.routing.provider import PROVIDER_ERRORS, ProviderClients, describe_failure, provider_error_body
from ccbridge.routing.translation import answer_translator, provider_request
from ccbridge.sse import assemble_message, parse_events
from ccbridge.translate import ModelCapabilities, estimate_prompt_tokens, strip_proxy_thinking

API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
MESSAGES_API = "messages"  # AlternateAnswer.api of an answer from the Anthropic API itself


@dataclass(frozen=True)
class Target:
    """Where `ask` sends a request: the route, its provider, and what the provider's model accepts."""

    route: Route
    provider: Provider
    capabilities: ModelCapabilities | None  # None for the Anthropic API, which gets the body untranslated

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.route.model}"


def resolve_target(text: str, routing: RoutingSettings, env: Mapping[str, str]) -> Target:
    """`PROVIDER/MODEL` with a provider of config.yaml, or `anthropic/<model>`; ConfigError says what is wrong."""
    name, slash, model = text.partition("/")
    if not slash or not name or not model:
        raise ConfigError(text, "write a route as PROVIDER/MODEL, e.g. openai/gpt-5-mini or anthropic/claude-haiku-4-5")
    if name in routing.providers:
        provider = routing.providers[name]
        if not provider.api_key:
            needs = (f"environment variable {provider.api_key_env} is not set" if provider.api_key_env
                     else "needs api_key or api_key_env in config.yaml")
            raise ConfigError(f"providers.{name}", f"{needs} (needed by the route {text})")
        route = Route(name, model)
        return Target(route, provider, routing.capabilities_of(route))
    if name == ANTHROPIC:
        return Target(Route(ANTHROPIC, model), anthropic_provider(env), None)
    known = ", ".join(sorted([*routing.providers, ANTHROPIC]))
    raise ConfigError(text, f"unknown provider {name!r}; known: {known}")


def anthropic_provider(env: Mapping[str, str]) -> Provider:
    """The Anthropic API as a provider, with the key from $ANTHROPIC_API_KEY (ConfigError when it is not set)."""
    key = env.get(API_KEY_ENV, "")
    if not key:
        raise ConfigError(API_KEY_ENV, "is not set: a route to anthropic/<model> needs an Anthropic API key")
    base_url = (env.get(BASE_URL_ENV) or ANTHROPIC_URL).rstrip("/")
    return Provider(name=ANTHROPIC, base_url=base_url, kind=ANTHROPIC, api_key=key, api_key_env=API_KEY_ENV,
                    api=MESSAGES_API)


async def ask(body: dict[str, Any], route: Route, provider: Provider, capabilities: ModelCapabilities | None, *,
              timeout: float, clients: ProviderClients | None = None,
              anthropic_beta: str | None = None) -> dict[str, Any]:
    """The AlternateAnswer columns (all but exchange_id, kind, created_at) of `route`'s answer to `body`.

    Failures are part of the answer (`error`), never raised. `clients`: the caller's SDK clients (the proxy's),
    else ones made and closed here. `anthropic_beta`: the original request's `anthropic-beta` header, which
    the Anthropic API needs to accept the body's beta fields.
    """
    if provider.api == MESSAGES_API:
        return await _ask_anthropic(body, route, provider, timeout=timeout, beta=anthropic_beta)
    if capabilities is None:
        raise ValueError(f"{provider.name}: a provider route needs the model's capabilities")
    if clients is not None:
        return await _ask_provider(body, route, provider, capabilities, timeout, clients)
    own = ProviderClients()
    try:
        return await _ask_provider(body, route, provider, capabilities, timeout, own)
    finally:
        await own.aclose()


async def ask_each(body: dict[str, Any], targets: list[Target], *, timeout: float,
                   anthropic_beta: str | None = None) -> list[dict[str, Any]]:
    """`ask` every target at once (one set of SDK clients); the answers in the order of `targets`."""
    clients = ProviderClients()
    try:
        return list(await asyncio.gather(*(
            ask(body, t.route, t.provider, t.capabilities, timeout=timeout, clients=clients,
                anthropic_beta=anthropic_beta)
            for t in targets)))
    finally:
        await clients.aclose()


class _Clock:
    """Milliseconds since the request left: to the first byte of the answer, and to its end."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.ttfb_ms: float | None = None

    def first_byte(self) -> None:
        if self.ttfb_ms is None:
            self.ttfb_ms = self.elapsed_ms()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000


async def _ask_provider(body: dict[str, Any], route: Route, provider: Provider, capabilities: ModelCapabilities,
                        timeout: float, clients: ProviderClients) -> dict[str, Any]:
    kwargs = provider_request({**body, "stream": True}, provider, capabilities, model=route.model, session_id=None)
    translator = answer_translator(body, provider, model=route.model, requested_model=route.model,
                                   message_id=_message_id(), input_tokens_estimate=estimate_prompt_tokens(kwargs))
    raw = bytearray()
    clock = _Clock()
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            stream = await clients.create(provider, timeout, kwargs)
            try:
                async for chunk in stream:
                    clock.first_byte()
                    raw += chunk.to_json(indent=None).encode() + b"\n"
                    translator.feed(chunk.model_dump())
            finally:
                await stream.close()
        translator.finish()
    except TimeoutError:
        error = f"timeout: no complete answer within {timeout:g} s"
    except PROVIDER_ERRORS as exc:
        raw += provider_error_body(exc)
        error = describe_failure(exc)
    except Exception as exc:  # a translation bug must not lose the other routes' answers
        error = f"ccbridge could not translate the answer: {describe_failure(exc)}"
    if error is None and translator.error is not None:
        error = translator.error[1]
    answer = translator.message if clock.ttfb_ms is not None else None
    return _columns(route, provider, kwargs, answer, bytes(raw), clock, error)


async def _ask_anthropic(body: dict[str, Any], route: Route, provider: Provider, *, timeout: float,
                         beta: str | None) -> dict[str, Any]:
    sent = {**strip_proxy_thinking(body), "model": route.model, "stream": True}
    headers = {"x-api-key": provider.api_key, "anthropic-version": ANTHROPIC_VERSION,
               "content-type": "application/json"}
    if beta:
        headers["anthropic-beta"] = beta
    raw = bytearray()
    clock = _Clock()
    status: int | None = None
    error: str | None = None
    # trust_env=False: a proxy variable may point at ccbridge itself, which would record the replay as traffic
    async with httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0))) as http:
        try:
            async with asyncio.timeout(timeout):
                async with http.stream("POST", f"{provider.base_url}/v1/messages", headers=headers,
                                       content=json.dumps(sent, ensure_ascii=False).encode()) as response:
                    status = response.status_code
                    async for piece in response.aiter_bytes():
                        clock.first_byte()
                        raw += piece
        except TimeoutError:
            error = f"timeout: no complete answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            error = describe_failure(exc)
    answer: dict[str, Any] | None = None
    if status is not None and status != 200:
        error = _anthropic_error(status, bytes(raw))
    elif raw:
        assembled = assemble_message(parse_events(bytes(raw)))
        answer = assembled.message
        if assembled.error is not None:
            error = error or _describe_error(assembled.error)
        elif not assembled.complete:
            error = error or "the answer stream ended before message_stop"
    return _columns(route, provider, sent, answer, bytes(raw), clock, error)


def _columns(route: Route, provider: Provider, request: dict[str, Any], answer: dict[str, Any] | None,
             raw: bytes, clock: _Clock, error: str | None) -> dict[str, Any]:
    tokens = Tokens.of_usage((answer or {}).get("usage"))
    price = cost_usd(provider.name, route.model, tokens, kind=provider.kind)
    return {
        "provider": provider.name,
        "model": route.model,
        "api": provider.api,
        "request": request,
        "answer": answer,
        "raw_response": raw or None,
        "input_tokens": tokens.input if answer else None,
        "output_tokens": tokens.output if answer else None,
        "cache_read_tokens": tokens.cache_read if answer else None,
        "cost_usd": float(price) if price is not None and answer else None,
        "ttfb_ms": clock.ttfb_ms,
        "duration_ms": clock.elapsed_ms(),
        "error": error,
    }


def _anthropic_error(status: int, body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return f"HTTP {status}: {_describe_error(parsed['error'])}"
    return f"HTTP {status}: {body[:500].decode('utf-8', errors='replace')}"


def _describe_error(error: Mapping[str, Any]) -> str:
    return f"{error.get('type') or 'error'}: {error.get('message') or ''}".strip()


def _message_id() -> str:
    return "msg_" + secrets.token_hex(12)
