"""What an answer used (its model and tokens), read from the body without parsing all of it.

A stream states its usage in two events: `message_start` (the model, input and cache tokens) at the start
and the last `message_delta` (output tokens; newer answers and routed ones repeat the final input counts)
near the end, so only those two `data:` lines are parsed. A JSON answer's `usage` object is the last key of
the message (after the content, which may be large), so it is parsed from where it starts. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..prices import Tokens
from ..storage.decode import codings, decode_bounded

DECODE_LIMIT = 16 * 1024 * 1024  # an encoded answer is decoded only this far: usage lies in its first and last KB
_SCAN = 4096  # bytes after a key in which its value must end
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class AnswerUsage:
    model: str | None  # the model the answer names
    tokens: Tokens


def answer_usage(chunks: Iterable[bytes], content_type: str | None, content_encoding: str | None = None
                 ) -> AnswerUsage | None:
    """The usage of an Anthropic Messages answer (SSE or JSON) as it crossed the wire; None when it shows none."""
    data = b"".join(chunks)
    if codings(content_encoding):
        data = decode_bounded(content_encoding, data, DECODE_LIMIT).data
    if "text/event-stream" in (content_type or "").lower():
        return stream_usage(data)
    return json_usage(data)


def stream_usage(data: bytes) -> AnswerUsage | None:
    """Usage from the `message_start` and the last `message_delta` of an SSE body (complete or cut)."""
    start = _event_data(data, data.find(b'"message_start"'), "message_start")
    delta = _event_data(data, data.rfind(b'"message_delta"'), "message_delta")
    message = start.get("message") if start else None
    message = message if isinstance(message, dict) else {}
    usage = dict(_mapping(message.get("usage")))
    # the delta's counts are final; a None there means "unchanged", as the SDKs read it
    usage.update({k: v for k, v in _mapping(delta.get("usage") if delta else None).items() if v is not None})
    if not usage:
        return None
    model = message.get("model")
    return AnswerUsage(model if isinstance(model, str) else None, Tokens.of_usage(usage))


def json_usage(data: bytes) -> AnswerUsage | None:
    """Usage from a JSON message body: its last `usage` key and its first `model` key."""
    usage = _last_value(data, b'"usage"')
    if not isinstance(usage, dict):
        return None
    model = _value_after(data, data.find(b'"model"'))
    return AnswerUsage(model if isinstance(model, str) else None, Tokens.of_usage(usage))


def _event_data(data: bytes, at: int, kind: str) -> dict[str, Any] | None:
    """The JSON of the `data:` line holding offset `at`, when it is an event of type `kind`."""
    if at < 0:
        return None
    begin = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    if end < 0:
        return None  # the stream was cut inside this line
    line = data[begin:end].rstrip(b"\r")
    if not line.startswith(b"data:"):
        return None
    try:
        payload = orjson.loads(line[5:])
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) and payload.get("type") == kind else None


def _last_value(data: bytes, key: bytes, tries: int = 4) -> Any:
    """The value of the last occurrence of `key` that is a key (a tool's input may use the name as a value)."""
    at = len(data)
    for _ in range(tries):
        at = data.rfind(key, 0, at)
        value = _value_after(data, at)
        if value is not None or at < 0:
            return value
    return None


def _value_after(data: bytes, at: int) -> Any:
    """The JSON value of the key whose quoted name starts at offset `at` (None when there is none)."""
    if at < 0:
        return None
    # escaped quotes inside strings look like \" so a bare "key" is a key or a whole string value
    text = data[at:at + _SCAN].decode("utf-8", "ignore")
    try:
        _, index = _DECODER.raw_decode(text)  # the key itself
        index = len(text) - len(text[index:].lstrip())
        if text[index:index + 1] != ":":
            return None
        index += 1
        index += len(text[index:]) - len(text[index:].lstrip())
        value, _ = _DECODER.raw_decode(text, index)
    except ValueError:
        return None
    return value


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
