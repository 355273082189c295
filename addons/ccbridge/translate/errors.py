"""Provider failures -> Anthropic error responses Claude Code reacts to sensibly.

Two rules shape the mapping: a provider's 401/403 must not reach Claude Code as 401/403 (it would
blame its own Anthropic key and ask the user to log in again), and a retry-after above 60 s makes
Claude Code give up, so it is capped. Failures after the stream began become an SSE `error` frame.
"""

from __future__ import annotations

import re
from typing import Any

from ccbridge.translate.sse_out import frame

MAX_RETRY_AFTER = 60
ErrorReply = tuple[int, dict[str, str], dict[str, Any]]

_CONTEXT_HINT = re.compile(
    r"context[ _]length|context window|maximum context|too many tokens|prompt is too long|input is too long",
    re.IGNORECASE,
)
_LIMIT = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_SPLIT = re.compile(r"(\d+) in the messages, (\d+) in the completion", re.IGNORECASE)
_INPUT = re.compile(r"(?:has|with) (\d+) input tokens", re.IGNORECASE)
_OUTPUT = re.compile(r"is too large: (\d+)", re.IGNORECASE)


def anthropic_error(
    status: int | None,
    provider_message: str,
    *,
    retry_after: str | None = None,
    provider: str = "the provider",
    model: str | None = None,
) -> ErrorReply:
    """(status, headers, body) for a provider's HTTP status; `status=None` means it could not be reached."""
    where = f"{provider} ({model})" if model else provider
    text = provider_message.strip() or "no details given"
    headers: dict[str, str] = {}
    if status is None:
        return _reply(502, "api_error", f"could not reach {where}: {text}", headers)
    if status in (400, 422):
        context = context_length_message(text)
        if context:
            return _reply(400, "invalid_request_error", context, headers)
        return _reply(400, "invalid_request_error", f"{where} rejected the request: {text}", headers)
    if status in (401, 403):
        headers["x-should-retry"] = "false"
        return _reply(502, "api_error", f"{where} refused ccbridge's credentials (HTTP {status}): {text}", headers)
    if status == 402 or (status == 429 and "insufficient_quota" in text):
        headers["x-should-retry"] = "false"
        return _reply(502, "api_error", f"{where} quota or billing problem (HTTP {status}): {text}", headers)
    if status == 404:
        return _reply(404, "not_found_error", f"model {model or '?'} not found at {provider}: {text}", headers)
    if status in (408, 504):
        return _reply(504, "timeout_error", f"{where} timed out (HTTP {status}): {text}", headers)
    if status == 409:
        return _reply(409, "api_error", f"{where}: {text}", headers)
    if status == 413:
        return _reply(413, "request_too_large", f"{where}: request too large: {text}", headers)
    if status == 429:
        capped = _capped_retry_after(retry_after)
        if capped is not None:
            headers["retry-after"] = capped
        return _reply(429, "rate_limit_error", f"{where} rate limit: {text}", headers)
    if status in (503, 529):
        return _reply(529, "overloaded_error", f"{where} is overloaded (HTTP {status}): {text}", headers)
    if status == 500:
        return _reply(500, "api_error", f"{where} failed (HTTP 500): {text}", headers)
    if status >= 500:
        return _reply(502, "api_error", f"{where} failed (HTTP {status}): {text}", headers)
    return _reply(400, "invalid_request_error", f"{where} rejected the request (HTTP {status}): {text}", headers)


def timeout_error(*, provider: str = "the provider", model: str | None = None) -> ErrorReply:
    """The provider did not answer within the configured timeout."""
    where = f"{provider} ({model})" if model else provider
    return _reply(504, "timeout_error", f"{where} did not answer in time", {})


def error_for_exception(exc: BaseException, *, provider: str, model: str | None = None) -> ErrorReply:
    """Map an exception raised by the `openai` SDK (or httpx underneath it)."""
    import openai  # kept local: the mapping above must stay usable without the SDK

    if isinstance(exc, openai.APITimeoutError):
        return timeout_error(provider=provider, model=model)
    if isinstance(exc, openai.APIStatusError):
        retry_after = exc.response.headers.get("retry-after") if exc.response is not None else None
        return anthropic_error(
            exc.status_code, _provider_text(exc), retry_after=retry_after, provider=provider, model=model
        )
    return anthropic_error(None, str(exc) or type(exc).__name__, provider=provider, model=model)


def stream_error_for_exception(exc: BaseException, *, provider: str, model: str | None = None) -> tuple[str, str]:
    """(error type, message) for a provider failure after its answer began: the stream broke off, since
    the provider was reached ("could not reach" is for failures before the first byte)."""
    import openai  # kept local, as in error_for_exception

    if isinstance(exc, openai.APITimeoutError | openai.APIStatusError):
        body = error_for_exception(exc, provider=provider, model=model)[2]
        return body["error"]["type"], body["error"]["message"]
    where = f"{provider} ({model})" if model else provider
    text = _provider_text(exc).strip() or type(exc).__name__
    return "api_error", f"the stream from {where} broke off: {text}"


def error_frame(error_type: str, message: str) -> bytes:
    """The mid-stream `event: error` frame."""
    return frame("error", error_body(error_type, message))


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def context_length_message(text: str) -> str | None:
    """Anthropic's wording for a context overflow, which Claude Code acts on (compaction); None if `text`
    is about something else."""
    if not _CONTEXT_HINT.search(text):
        return None
    limit = _LIMIT.search(text)
    split = _SPLIT.search(text)
    prompt = int(split.group(1)) if split else _int(_INPUT.search(text))
    output = int(split.group(2)) if split else _int(_OUTPUT.search(text))
    maximum = _int(limit)
    if maximum is not None and prompt is not None and prompt >= maximum:
        return f"prompt is too long: {prompt} tokens > {maximum} maximum"
    if maximum is not None and prompt is not None and output is not None:
        return (
            f"input length and `max_tokens` exceed context limit: {prompt} + {output} > {maximum}, "
            "decrease input length or `max_tokens` and try again"
        )
    return f"prompt is too long: {text}"


def _provider_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        code = body.get("code") or body.get("type")
        if message:
            return f"{message} [{code}]" if code else str(message)
    return str(getattr(exc, "message", "") or exc)


def _capped_retry_after(value: str | None) -> str | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: let the client use its own backoff
    if seconds is None or seconds < 0:
        return None
    return str(min(MAX_RETRY_AFTER, max(1, round(seconds))))


def _int(match: re.Match[str] | None) -> int | None:
    return int(match.group(1)) if match else None


def _reply(status: int, error_type: str, message: str, headers: dict[str, str]) -> ErrorReply:
    return status, {"content-type": "application/json", **headers}, error_body(error_type, message)
