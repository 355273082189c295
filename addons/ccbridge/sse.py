"""Server-sent events: an incremental parser, and the reassembly of an Anthropic message from its events.

Pure code on plain data. The parser follows the WHATWG event-stream rules (LF, CRLF or CR line ends,
comments, `event`, `data`, `id`, `retry`); `assemble_message` rebuilds the final Messages API object the
way the Anthropic SDKs do, including tool input parsed from the `input_json_delta` pieces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    end: int = 0  # offset in the stream just after the blank line that dispatched the event

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class SSEParser:
    """Feed bytes in any chunking; get the events completed so far."""

    _buffer: bytes = b""
    _offset: int = 0  # stream offset of _buffer[0]
    _pending: dict[str, Any] = field(default_factory=dict)
    _data: list[str] = field(default_factory=list)
    _last_cr: bool = False

    def feed(self, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        buffer = self._buffer + chunk
        start = 0
        if self._last_cr and buffer.startswith(b"\n"):  # CRLF split across chunks
            start = 1
        self._last_cr = False
        while True:
            cut = _line_end(buffer, start)
            if cut is None:
                break
            end, next_start = cut
            if end == len(buffer) - 1 and buffer[end : end + 1] == b"\r":
                self._last_cr = True
            event = self._line(buffer[start:end].decode("utf-8", errors="replace"), self._offset + next_start)
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buffer[start:]
        self._offset += start
        return events

    def _line(self, line: str, end: int) -> Event | None:
        if line == "":
            if not self._data and not self._pending:
                return None
            event = Event(
                event=self._pending.get("event") or "message",
                data="\n".join(self._data),
                id=self._pending.get("id"),
                retry=self._pending.get("retry"),
                end=end,
            )
            self._pending, self._data = {}, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._pending["event"] = value
        elif name == "id" and "\0" not in value:
            self._pending["id"] = value
        elif name == "retry" and value.isdigit():
            self._pending["retry"] = int(value)
        return None


def _line_end(buffer: bytes, start: int) -> tuple[int, int] | None:
    """(end of line, start of next line) for the first line ending at or after `start`."""
    lf = buffer.find(b"\n", start)
    # a CR only matters before that LF: searching the whole rest for each line made a long stream quadratic
    cr = buffer.find(b"\r", start, len(buffer) if lf == -1 else lf)
    if cr != -1 and (lf == -1 or cr < lf):
        return cr, cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
    if lf != -1:
        return lf, lf + 1
    return None


def parse_events(stream: bytes) -> list[Event]:
    """All complete events of a stream (a trailing event without its blank line is dropped)."""
    return SSEParser().feed(stream)


USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass
class Assembly:
    """The message reassembled from a stream, and what went wrong on the way."""

    message: dict[str, Any] | None
    error: dict[str, Any] | None = None
    complete: bool = False  # message_stop seen
    problems: list[str] = field(default_factory=list)


def assemble_message(events: list[Event]) -> Assembly:
    """Rebuild the Anthropic message from Messages API stream events."""
    out = Assembly(message=None)
    partial_json: dict[int, list[str]] = {}
    texts = _Texts()
    for event in events:
        try:
            payload = event.json() if event.data else {}
        except ValueError:
            out.problems.append(f"event {event.event!r} has non-JSON data")
            continue
        kind = payload.get("type", event.event) if isinstance(payload, dict) else event.event
        if kind == "message_start":
            out.message = dict(payload.get("message") or {})
            out.message.setdefault("content", [])
            out.message["content"] = list(out.message["content"])
        elif kind == "error":
            out.error = payload.get("error", payload)
        elif out.message is None:
            if kind not in ("ping",):
                out.problems.append(f"{kind!r} before message_start")
        else:
            _apply(out, kind, payload, partial_json, texts)
    texts.join()
    if out.message is not None:
        for index, pieces in partial_json.items():  # stream cut inside a tool call
            _finish_tool_input(out, out.message["content"][index], index, "".join(pieces))
    return out


class _Texts:
    """The deltas of each block's text fields, joined once at the end (adding up strings was quadratic)."""

    def __init__(self) -> None:
        self._parts: dict[int, tuple[dict[str, Any], dict[str, list[str]]]] = {}

    def add(self, block: dict[str, Any], key: str, text: Any) -> None:
        _, fields = self._parts.setdefault(id(block), (block, {}))
        if key not in fields:
            fields[key] = [block.get(key, "")]  # the key keeps its place in the block
            block[key] = ""
        fields[key].append(text)

    def join(self) -> None:
        for block, fields in self._parts.values():
            for key, parts in fields.items():
                block[key] = "".join(parts)


def _apply(out: Assembly, kind: str, payload: dict[str, Any], partial_json: dict[int, list[str]],
           texts: _Texts) -> None:
    message = out.message
    assert message is not None
    content: list[dict[str, Any]] = message["content"]
    if kind == "content_block_start":
        index = payload.get("index", len(content))
        block = dict(payload.get("content_block") or {})
        while len(content) <= index:
            content.append({})
        content[index] = block
        if block.get("type") in ("tool_use", "server_tool_use", "mcp_tool_use"):
            partial_json[index] = []
    elif kind == "content_block_delta":
        index = payload.get("index", -1)
        if not 0 <= index < len(content):
            out.problems.append(f"delta for unknown block {index}")
            return
        _apply_delta(content[index], payload.get("delta") or {}, partial_json, index, texts)
    elif kind == "content_block_stop":
        index = payload.get("index", -1)
        if index in partial_json:
            _finish_tool_input(out, content[index], index, "".join(partial_json.pop(index)))
    elif kind == "message_delta":
        delta = payload.get("delta") or {}
        for key in ("stop_reason", "stop_sequence", "container"):
            if key in delta:
                message[key] = delta[key]
        usage = payload.get("usage") or {}
        merged = dict(message.get("usage") or {})
        merged.update({k: v for k, v in usage.items() if v is not None})
        message["usage"] = merged
    elif kind == "message_stop":
        out.complete = True


def _apply_delta(block: dict[str, Any], delta: dict[str, Any], partial_json: dict[int, list[str]], index: int,
                 texts: _Texts) -> None:
    kind = delta.get("type")
    if kind in _TEXT_DELTAS:
        key = _TEXT_DELTAS[kind]
        texts.add(block, key, delta.get(key, ""))
    elif kind == "input_json_delta":
        partial_json.setdefault(index, []).append(delta.get("partial_json", ""))
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))


_TEXT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}


def _finish_tool_input(out: Assembly, block: dict[str, Any], index: int, text: str) -> None:
    if not text:
        block.setdefault("input", {})
        return
    try:
        block["input"] = json.loads(text)
    except ValueError:
        block["input"] = {}
        block["partial_input"] = text
        out.problems.append(f"tool input of block {index} is not complete JSON")


def usage_of(message: dict[str, Any] | None) -> dict[str, int | None]:
    usage = (message or {}).get("usage") or {}
    return {key: usage.get(key) if isinstance(usage.get(key), int) else None for key in USAGE_KEYS}
