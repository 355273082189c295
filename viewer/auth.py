"""Who may read the captures: HTTP basic (password) or bearer (token) on every route but /health.

A pure ASGI middleware, so it covers everything the app serves (pages, API, /docs, static files) and not
only the routes that declare a dependency. Without credentials configured it lets requests through, but
can still insist on a loopback Host header, which stops DNS-rebinding pages from reading a local viewer.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def credentials_ok(authorization: str | None, password: str | None, token: str | None) -> bool:
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and token:
        return _same(value, token)
    if scheme == "basic" and password:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return _same(decoded.partition(":")[2], password)
    return False


def _host_name(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"host":
            host = value.decode("latin-1")
            return host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, password: str | None = None, token: str | None = None,
                 loopback_hosts_only: bool = False) -> None:
        self.app = app
        self.password = password
        self.token = token
        self.loopback_hosts_only = loopback_hosts_only

    @property
    def required(self) -> bool:
        return bool(self.password or self.token)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        if self.loopback_hosts_only:
            host = _host_name(headers)
            if host is not None and not is_loopback(host):
                await _answer(send, 421, b"This viewer answers only to localhost names.", [])
                return
        if self.required:
            authorization = next((v.decode("latin-1") for k, v in headers if k == b"authorization"), None)
            if not credentials_ok(authorization, self.password, self.token):
                challenge = [(b"www-authenticate", b'Basic realm="ccbridge", charset="UTF-8"')] if self.password \
                    else [(b"www-authenticate", b'Bearer realm="ccbridge"')]
                await _answer(send, 401, b"Authentication required.", challenge)
                return
        await self.app(scope, receive, send)


async def _answer(send: Callable[[Any], Awaitable[None]], status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
