"""Seeded fuzz cases for the proxy: requests built from the real Claude Code captures, answers malformed in the
ways real upstreams and networks manage (cut SSE, corrupt gzip, non-UTF-8, NUL, 30-digit numbers, deep JSON,
odd chunking and headers), all within HTTP: a wrong Content-Length would break the protocol, not the proxy.

`cases(seed, count)` gives the same list for the same seed; `FuzzCase.reply` is what the mock upstream sends.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.fixtures import all_requests
from tests.support.mock_anthropic import (
    BodyItem,
    Reply,
    message_events,
    message_json,
    sse_event,
    text_block,
    tool_use_block,
)

CASE_HEADER = "x-fuzz-case"
# hop-by-hop and framing headers are the client's and the mock's business, not the case's
_SKIPPED = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding", "keep-alive"}
_WORDS = ["hello", "Grüße", "日本語", "emoji 😀", "tab\there", "quote \" and \\", "line\nbreak", "x" * 40,
          "\u2028", "zero\u200bwidth", "RTL \u202e", "null \u0000 inside"]


@dataclass
class FuzzCase:
    number: int
    kind: str  # what the answer is, for the summary
    method: str
    target: str
    headers: list[tuple[str, bytes]]
    body: bytes
    body_chunks: list[bytes] | None  # sent with Transfer-Encoding: chunked in these pieces
    reply: Reply = field(repr=False)


def _fixture_bodies() -> list[tuple[list[tuple[str, str]], str, dict[str, Any]]]:
    found = []
    for _name, request in all_requests():
        if request["method"] == "POST" and isinstance(request["body"], dict):
            headers = [(k, v) for k, v in request["headers"] if k.lower() not in _SKIPPED]
            found.append((headers, request["raw_target"], request["body"]))
    return found


def _text(rng: random.Random, words: int = 6) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _slim(body: dict[str, Any]) -> dict[str, Any]:
    """The request's shape with most of its bulk left out (the full body is 50-80 KB): no tools, one system
    block, long texts cut."""
    slim = copy.deepcopy({k: v for k, v in body.items() if k != "tools"})
    if isinstance(slim.get("system"), list):
        slim["system"] = slim["system"][:1]
    for message in slim.get("messages") or []:
        if isinstance(message.get("content"), list):
            for block in message["content"]:
                if block.get("type") == "text" and len(block.get("text", "")) > 400:
                    block["text"] = block["text"][:400]
    return slim


def _varied(rng: random.Random, body: dict[str, Any], slim: dict[str, Any]) -> dict[str, Any]:
    """A new turn of the conversation: the slim body (shared, never changed) with a prompt and maybe tools."""
    varied = {**slim, "messages": [*(slim.get("messages") or []), {"role": "user", "content": _text(rng)}]}
    tools = body.get("tools") or []
    if tools and rng.random() < 0.5:
        varied["tools"] = tools[: rng.randint(1, 2)]
    return varied


def _deep(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _mutated_request(rng: random.Random, body: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]], str]:
    """The body as bytes, extra headers, and the mutation's name."""
    choice = rng.random()
    text = json.dumps(body, ensure_ascii=rng.random() < 0.3).encode()
    if choice < 0.45:
        return text, [], "as-is"
    if choice < 0.50:
        body = {**body, "max_tokens": 10**29 + rng.randint(0, 10**6)}
        return json.dumps(body).encode(), [], "30-digit"
    if choice < 0.55:
        return text.replace(b'"messages": [', b'"deep": ' + _deep(rng.randint(900, 5000)).encode() + b', '
                            b'"messages": [', 1), [], "deep"
    if choice < 0.60:
        return text[: rng.randint(1, max(1, len(text) - 1))], [], "cut"
    if choice < 0.64:
        at = rng.randint(0, len(text))
        return text[:at] + bytes(rng.randint(0x80, 0xFF) for _ in range(rng.randint(1, 5))) + text[at:], [], "bad-utf8"
    if choice < 0.68:
        return text.replace(b'"role"', b'"r\x00le"', 1) + b"\x00", [], "nul"
    if choice < 0.71:
        return text.replace(b'"user"', b'"\\ud800user"', 1), [], "surrogate"
    if choice < 0.80:
        return gzip.compress(text, compresslevel=1, mtime=0), [("content-encoding", b"gzip")], "gzip"
    if choice < 0.84:
        packed = bytearray(gzip.compress(text, compresslevel=1, mtime=0))
        for _ in range(rng.randint(1, 4)):
            packed[rng.randrange(10, len(packed))] ^= 0xFF
        return bytes(packed), [("content-encoding", b"gzip")], "gzip-corrupt"
    if choice < 0.87:
        return zlib.compress(text)[: rng.randint(5, 60)], [("content-encoding", b"deflate")], "deflate-cut"
    if choice < 0.90:
        return rng.randbytes(rng.randint(0, 2000)), [], "random-bytes"
    if choice < 0.93:
        return b"", [], "empty"
    return text, [("content-encoding", b"x-unknown")], "unknown-coding"


def _odd_headers(rng: random.Random) -> list[tuple[str, bytes]]:
    """Headers a strict server might frown at, all legal HTTP/1.1 (obs-text, long values, many, repeated)."""
    choice = rng.random()
    if choice < 0.6:
        return []
    if choice < 0.7:
        return [(f"x-fuzz-{i}", str(rng.random()).encode()) for i in range(rng.randint(20, 80))]
    if choice < 0.8:
        return [("x-long", b"v" * rng.randint(1000, 7000))]
    if choice < 0.88:
        return [("x-latin", bytes([0x63, 0x61, 0x66, 0xE9, 0x20, 0xFF, 0xA0]))]  # latin-1 bytes, not UTF-8
    if choice < 0.94:
        return [("X-Dup", b"one"), ("x-dup", b"two"), ("X-DUP", b"")]
    return [("x-api-key", b"sk-ant-api03-" + rng.randbytes(24).hex().encode()),
            ("authorization", b"Bearer ghp_" + rng.randbytes(18).hex().encode())]


# -- answers -----------------------------------------------------------------------------------------------


def _pieces(rng: random.Random, data: bytes) -> list[bytes]:
    """`data` in random pieces: a few 1-byte chunks, a UTF-8 character or CRLF split across two, then bigger
    ones (at most about 40 pieces: each is a send and an HTTP chunk, and the proxy handles each)."""
    out, at = [], 0
    small = rng.choice([3, 200, 8000])
    while at < len(data):
        size = rng.randint(1, small if len(out) < 20 else max(8000, len(data) // 20))
        out.append(data[at : at + size])
        at += size
    return out


def _content(rng: random.Random) -> list[dict[str, Any]]:
    blocks = [text_block(_text(rng, rng.randint(1, 30)))]
    if rng.random() < 0.3:
        blocks.append(tool_use_block("Bash", {"command": _text(rng, 3), "n": rng.randint(0, 10**6)}))
    return blocks


def _sse(rng: random.Random) -> tuple[bytes, str]:
    frames = message_events(_content(rng), piece=rng.randint(1, 30))
    choice = rng.random()
    if choice < 0.4:
        return b"".join(frames), "sse"
    if choice < 0.5:
        data = b"".join(frames)
        return data[: rng.randint(0, len(data))], "sse-cut"
    if choice < 0.58:
        data = b"".join(frames)
        return data.replace(b"\n", rng.choice([b"\r", b"\r\n"])), "sse-cr"
    if choice < 0.66:
        frames.insert(rng.randint(0, len(frames)), b": a comment\n\nretry: 10\ndata: not json {\n\n")
        frames.insert(rng.randint(0, len(frames)), b"event: content_block_delta\ndata: {\"type\": \"content_block_"
                                                   b"delta\", \"index\": 99, \"delta\": {}}\n\n")
        return b"".join(frames), "sse-garbage"
    if choice < 0.72:
        at = rng.randint(1, len(frames) - 1)
        error = sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        return b"".join([*frames[:at], error]), "sse-error"
    if choice < 0.78:
        data = b"".join(frames)
        at = rng.randint(0, len(data))
        return data[:at] + bytes([rng.randint(0x80, 0xFF)]) + data[at:], "sse-bad-utf8"
    if choice < 0.84:
        data = b"".join(frames).replace(b'"input_tokens":2095', b'"input_tokens":' + b"9" * 30)
        return data, "sse-30-digit"
    if choice < 0.90:
        data = b"".join(frames).replace(b'"text":"', b'"text":"\\u0000\\ud800', 1)
        return data, "sse-nul-surrogate"
    return b"".join([sse_event("content_block_delta", {"type": "content_block_delta", "index": 0}),
                     *frames[:3]]), "sse-out-of-order"


def _json(rng: random.Random) -> tuple[bytes, str]:
    text = json.dumps(message_json(_content(rng)), ensure_ascii=rng.random() < 0.5).encode()
    choice = rng.random()
    if choice < 0.45:
        return text, "json"
    if choice < 0.55:
        return text[: rng.randint(0, len(text))], "json-cut"
    if choice < 0.62:
        return text.replace(b'"input_tokens": 2095', b'"input_tokens": ' + b"1" * 30), "json-30-digit"
    if choice < 0.69:
        return text.replace(b'"content": [', b'"deep": ' + _deep(rng.randint(900, 5000)).encode() + b', '
                            b'"content": [', 1), "json-deep"
    if choice < 0.76:
        return text.replace(b'"role"', b'"ro\x00le"', 1), "json-nul"
    if choice < 0.83:
        return text.replace(b'"type": "text"', b'"type": "t\xffext\xc3"', 1), "json-bad-utf8"
    if choice < 0.90:
        return b"[" + b"1.5e999, NaN, " * rng.randint(1, 50) + b"1]", "json-odd-numbers"
    return rng.randbytes(rng.randint(1, 3000)), "random-bytes"


def _encoded(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, list[tuple[str, str]], str]:
    choice = rng.random()
    if choice < 0.7:
        return data, [], kind
    if choice < 0.85:
        return gzip.compress(data, compresslevel=1, mtime=0), [("content-encoding", "gzip")], f"{kind}+gzip"
    if choice < 0.92:
        packed = gzip.compress(data, compresslevel=1, mtime=0)
        if rng.random() < 0.5:
            return packed[: rng.randint(0, len(packed))], [("content-encoding", "gzip")], f"{kind}+gzip-cut"
        corrupt = bytearray(packed)
        corrupt[rng.randrange(len(corrupt))] ^= 0x55
        return bytes(corrupt), [("content-encoding", "gzip")], f"{kind}+gzip-corrupt"
    if choice < 0.95:
        return rng.randbytes(rng.randint(1, 200)), [("content-encoding", "br")], f"{kind}+br-garbage"
    if choice < 0.98:
        return data, [("content-encoding", "x-fuzz, identity")], f"{kind}+unknown-coding"
    return zlib.compress(data), [("content-encoding", "deflate")], f"{kind}+deflate"


def _reply(rng: random.Random, stream: bool) -> tuple[Reply, str]:
    if rng.random() < 0.1:
        status = rng.choice([400, 401, 404, 413, 429, 500, 529])
        body = json.dumps({"type": "error", "error": {"type": "api_error", "message": _text(rng)}}).encode()
        return Reply(status, [("content-type", "application/json")], [body],
                     framing=rng.choice(["length", "chunked"])), f"status-{status}"
    if rng.random() < 0.02:
        return Reply(200, [("content-type", "application/json")], [], framing="length"), "empty"
    if stream or rng.random() < 0.1:
        data, kind = _sse(rng)
        content_type = "text/event-stream; charset=utf-8"
    else:
        data, kind = _json(rng)
        content_type = "application/json"
    if rng.random() < 0.01:  # a few big ones: 300 KB to 1 MB
        if content_type.startswith("text/event-stream"):
            data = sse_event("ping", {"type": "ping", "pad": "p" * 1000}) * rng.randint(300, 1000) + data
        else:
            data += b" " * rng.randint(300_000, 1_000_000)
        kind += "-big"
    data, headers, kind = _encoded(rng, data, kind)
    headers = [("content-type", content_type), *headers, *_odd_response_headers(rng)]
    framing = rng.choices(["chunked", "length", "close"], weights=[6, 3, 1])[0]
    body: list[BodyItem] = list(_pieces(rng, data))
    return Reply(200, headers, body, framing=framing), f"{kind}/{framing}"


def _odd_response_headers(rng: random.Random) -> list[tuple[str, str]]:
    choice = rng.random()
    if choice < 0.8:
        return []
    if choice < 0.9:
        return [(f"x-upstream-{i}", "v" * rng.randint(0, 60)) for i in range(rng.randint(10, 60))]
    if choice < 0.95:
        return [("anthropic-ratelimit-unified-status", "allowed"), ("anthropic-ratelimit-unified-reset",
                                                                    "9" * 30)]
    return [("x-latin", "caf\xe9 \xff"), ("set-cookie", "a=1"), ("Set-Cookie", "b=2")]


# -- the cases ---------------------------------------------------------------------------------------------


def cases(seed: int, count: int) -> Iterator[FuzzCase]:
    """`count` cases, the same for the same seed."""
    rng = random.Random(seed)
    bodies = [(headers, target, body, _slim(body)) for headers, target, body in _fixture_bodies()]
    for number in range(count):
        if rng.random() < 0.04:
            yield _head_or_get(rng, number)
            continue
        headers, target, full, slim = rng.choice(bodies)
        body = full if rng.random() < 0.05 else _varied(rng, full, slim)
        stream = bool(body.get("stream"))
        if rng.random() < 0.3:
            stream = not stream
            body = {**body, "stream": stream}
        data, extra, mutation = _mutated_request(rng, body)
        reply, kind = _reply(rng, stream)
        request_headers = [(k, v.encode()) for k, v in headers] + extra + _odd_headers(rng)
        chunks = _pieces(rng, data) if data and rng.random() < 0.1 else None
        yield FuzzCase(number, f"{mutation} -> {kind}", "POST", target, request_headers, data, chunks, reply)


def _head_or_get(rng: random.Random, number: int) -> FuzzCase:
    if rng.random() < 0.5:
        return FuzzCase(number, "HEAD", "HEAD", "/", [("user-agent", b"Bun/1.4.0")], b"", None,
                        Reply(404, [("content-type", "text/plain")], [b"Not Found"], framing="length"))
    body = json.dumps({"data": [{"id": "claude-opus-5-5", "type": "model"}], "has_more": False}).encode()
    return FuzzCase(number, "GET models", "GET", f"/v1/models?limit={rng.randint(1, 1000)}&odd=%00%FF%2F",
                    [("anthropic-version", b"2023-06-01")], b"", None,
                    Reply(200, [("content-type", "application/json")], list(_pieces(rng, body)), framing="chunked"))
