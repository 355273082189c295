"""Secrets never reach storage: header values, query values and path segments that carry keys or tokens
become fingerprints; with `capture.redact_body_secrets`, so do key and token shapes inside bodies.

A fingerprint keeps what lets a person tell two keys apart without being able to use one:
a short prefix (the scheme and key type), the last 4 characters and a salted hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

SECRET_NAMES = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie", "api-key"})
_SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|auth|credential|session-?token|signature)", re.I)
# The shapes of common keys and tokens, wherever they appear: Anthropic and OpenAI (sk-, sk-ant-), GitHub
# (ghp_ and its siblings, github_pat_), Slack (xoxb-, xoxp-, ...), AWS access key ids, Google API keys, JWTs.
TOKEN = (r"(?<![A-Za-z0-9_-])(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
         r"|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}"
         r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)")
_TOKEN = re.compile(TOKEN)
_TOKEN_BYTES = re.compile(TOKEN.encode())
# values that look like credentials whatever the header is called: a token shape, or an HTTP auth scheme
_SECRET_VALUE = re.compile(rf"{TOKEN}|\b(?:Bearer|Basic)\s+\S{{8,}}|eyJ[A-Za-z0-9_-]{{10,}}\.[A-Za-z0-9_-]{{4,}}", re.I)
# headers whose names match the pattern above but carry no secret (ids, not credentials)
NOT_SECRET = frozenset({"x-claude-code-session-id", "anthropic-ratelimit-unified-fallback-percentage"})


def is_secret_header(name: str, value: str) -> bool:
    lower = name.lower()
    if lower in SECRET_NAMES:
        return True
    if lower in NOT_SECRET or lower.startswith("anthropic-ratelimit-"):
        return False
    return bool(_SECRET_NAME.search(lower) or _SECRET_VALUE.search(value))


def fingerprint(value: str, salt: bytes) -> str:
    """e.g. `sk-ant-api03…AbCd #1f2e3d4c5b6a` or `Bearer sk-a…AbCd #…`."""
    scheme, _, secret = value.partition(" ") if value.lower().startswith(("bearer ", "basic ")) else ("", "", value)
    secret = secret.strip()
    digest = hmac.new(salt, secret.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:12]
    shown = f"{secret[:_prefix_length(secret)]}…{secret[-4:]}" if len(secret) >= 16 else "…"
    return f"{scheme + ' ' if scheme else ''}{shown} #{digest}"


def _prefix_length(secret: str) -> int:
    # show the key type ("sk-ant-api03-", "sk-proj-") but never more than 12 characters of the secret
    match = re.match(r"[A-Za-z]+([-_][A-Za-z0-9]+){0,2}[-_]", secret)
    return min(len(match.group(0)), 12) if match else 0


def redact_headers(headers: Iterable[tuple[str, str]], salt: bytes) -> list[list[str]]:
    return [
        [name, fingerprint(value, salt) if is_secret_header(name, value) else value] for name, value in headers
    ]


def redact_query(query: Iterable[tuple[str, str]], salt: bytes) -> list[tuple[str, str]]:
    """Query values named like credentials (`?key=`, `?access_token=`) or shaped like a token become fingerprints."""
    return [(k, fingerprint(v, salt) if _SECRET_NAME.search(k) or _SECRET_VALUE.search(v) else v) for k, v in query]


def redact_path(path: str, salt: bytes) -> str:
    """Path segments shaped like a token (`/keys/sk-ant-…`) become fingerprints; the rest stays as it is."""
    if not _TOKEN.search(path):
        return path
    return "/".join(fingerprint(segment, salt) if _TOKEN.search(segment) else segment for segment in path.split("/"))


def redact_body(body: bytes, salt: bytes) -> bytes:
    """Every token shape inside `body` replaced with its fingerprint (capture.redact_body_secrets)."""
    return _TOKEN_BYTES.sub(lambda m: fingerprint(m.group(0).decode("ascii"), salt).encode("utf-8"), body)
