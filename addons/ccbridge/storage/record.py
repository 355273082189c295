"""Turn a captured exchange into rows: decode, redact, decompose, reassemble. Pure (no database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import identity, ratelimits, redact, sse
from ..captured import CapturedExchange
from ..headers import HeaderView
from .decode import decode_bounded
from .holdable import fit_exchange, fit_json, fit_text, has_lone_surrogate
from .models import Exchange, MessageNode
from .pieces import (
    Piece,
    Skeleton,
    compact_json,
    decompose,
    is_decomposable,
    make_piece,
    message_nodes,
    parse_json,
    piece_hash,
    raw_row,
    split_headers,
)


def exchange_defaults() -> dict[str, Any]:
    """Every Exchange column with its default: rows are built as plain dicts, without model validation."""
    values: dict[str, Any] = {}
    for name, info in Exchange.model_fields.items():
        if name == "id":
            continue
        factory = info.default_factory
        values[name] = factory() if factory is not None else (None if info.is_required() else info.default)  # type: ignore[call-arg]
    return values


EXCHANGE_DEFAULTS = exchange_defaults()


@dataclass
class Rows:
    """Everything one exchange adds to the database; `exchange` holds the Exchange columns."""

    exchange: dict[str, Any]
    pieces: dict[str, Piece] = field(default_factory=dict)
    nodes: list[MessageNode] = field(default_factory=list)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # RawBody rows by hash
    alternate: dict[str, Any] | None = None  # AlternateAnswer columns: the record is a shadow answer, not an exchange
    project_dir: str | None = None
    problems: list[str] = field(default_factory=list)


def when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)




def build_rows(captured: CapturedExchange, salt: bytes) -> Rows:
    exchange = dict(
        EXCHANGE_DEFAULTS,
        flow_id=captured.flow_id,
        started_at=when(captured.started_at),
        request_done_at=when(captured.request_done_at),
        first_byte_at=when(captured.first_byte_at),
        finished_at=when(captured.finished_at),
        method=captured.method,
        scheme=captured.scheme,
        host=captured.host,
        port=captured.port,
        path=redact.redact_path(captured.path, salt),
        query="&".join(f"{k}={v}" for k, v in redact.redact_query(captured.query, salt)),
        http_version=captured.http_version,
        complete=captured.complete,
        error_kind=captured.error_kind,
        error_message=captured.error_message,
        routed=captured.route is not None,
        route=captured.route,
        provider_request=_provider_request(captured, salt),
    )
    rows = Rows(exchange)
    set_request_headers(rows, redact.redact_headers(captured.request_headers, salt))
    request_headers = HeaderView(captured.request_headers)
    body = _request(rows, captured, request_headers.get("content-encoding"), salt)
    who = identity.identify(request_headers, body)
    exchange.update(who.__dict__)
    rows.project_dir = identity.project_dir(body)
    if captured.provider_response is not None:
        exchange["provider_response_hash"] = _raw(rows, body_to_store(captured, captured.provider_response, salt))
    if captured.response_headers is not None:
        _response(rows, captured, salt)
    finish(rows)
    return rows


def finish(rows: Rows) -> None:
    """Fit the row to what every database holds; the notes of everything that went wrong go with it."""
    rows.problems.extend(fit_exchange(rows.exchange))
    if rows.project_dir is not None:
        rows.project_dir, changed = fit_text(rows.project_dir)
        if changed:
            rows.problems.append(f"project directory: {'; '.join(changed)}")
    rows.exchange["problems"] = fit_json(rows.problems)[0] or None


def set_request_headers(rows: Rows, headers: list[list[str]]) -> None:
    """Store the (redacted) header list as a piece shared by the requests that send it, its varying values here."""
    headers, changed = fit_json(headers)
    rows.problems.extend(f"request headers: {change}" for change in changed)
    shared, values = split_headers(headers)
    rows.exchange["request_headers_hash"] = _piece(rows, make_piece("headers", shared))
    rows.exchange["request_header_values"] = values or None


def _piece(rows: Rows, piece: Piece) -> str:
    rows.pieces.setdefault(piece.hash, piece)
    return piece.hash


def _raw(rows: Rows, data: bytes, answer: Piece | None = None) -> str:
    row = raw_row(data, answer)
    rows.raw[row["hash"]] = row
    return row["hash"]


def body_to_store(captured: CapturedExchange, body: bytes, salt: bytes) -> bytes:
    """The body as stored: token shapes fingerprinted when capture.redact_body_secrets is on."""
    return redact.redact_body(body, salt) if captured.redact_body_secrets else body


def _provider_request(captured: CapturedExchange, salt: bytes) -> dict[str, Any] | None:
    return None if captured.provider_request is None else redacted_json(captured, captured.provider_request, salt)


def redacted_json(captured: CapturedExchange, value: dict[str, Any], salt: bytes) -> dict[str, Any]:
    """`value` with token shapes fingerprinted when capture.redact_body_secrets is on."""
    if not captured.redact_body_secrets:
        return value
    redacted = redact.redact_body(compact_json(value).encode(), salt)
    return value if redacted == compact_json(value).encode() else parse_json(redacted)


def _request(rows: Rows, captured: CapturedExchange, encoding: str | None, salt: bytes) -> Any:
    exchange = rows.exchange
    raw = captured.request_body or b""
    exchange["request_size"] = len(raw)
    if not raw:
        exchange["request_body_kind"] = "empty"
        return None
    decoded, truncated, problem = decode_bounded(encoding, raw, captured.body_limit)
    decoded = body_to_store(captured, decoded, salt)
    if problem:
        rows.problems.append(f"request: {problem}")
    if truncated or captured.request_truncated:
        rows.problems.append(f"request: body longer than capture.max_body_mb; stored its first {len(decoded)} bytes")
    if encoding and encoding.lower() != "identity":
        exchange["request_encoding"] = encoding  # what is stored is the decoded body
    body = parse_json(decoded)
    if body is not None and has_lone_surrogate(decoded, body):
        # no database stores such a string; the bytes as sent rebuild the request exactly
        rows.problems.append("request: a JSON string holds a lone surrogate; stored as raw bytes")
        exchange["request_body_kind"] = "raw"
        exchange["request_raw_hash"] = _raw(rows, decoded)
        return fit_json(body)[0]
    if body is not None and is_decomposable(body):
        split = decompose(body)
        rows.pieces.update(split.pieces)
        rows.nodes = message_nodes(split.message_refs)
        exchange["request_body_kind"] = "messages"
        skeleton, changed = fit_json(split.skeleton)
        rows.problems.extend(f"request skeleton: {change}" for change in changed)
        exchange["request_skeleton_hash"] = _piece(rows, Skeleton(skeleton, split.system_refs, split.tool_refs).piece())
        exchange["messages_tail"] = rows.nodes[-1].id if rows.nodes else None
        exchange["message_count"] = len(split.message_refs)
        exchange["cache_marks"] = split.cache_marks or None
    else:  # anything else is kept byte for byte
        exchange["request_body_kind"] = "raw"
        exchange["request_raw_hash"] = _raw(rows, decoded)
    return body


def _response(rows: Rows, captured: CapturedExchange, salt: bytes) -> None:
    exchange = rows.exchange
    headers = captured.response_headers or []
    named = HeaderView(headers)
    exchange["status_code"] = captured.status_code
    exchange["response_headers"] = redact.redact_headers(headers, salt)
    content_type = named.get("content-type") or ""
    exchange["response_content_type"] = content_type[:255] or None
    encoding = named.get("content-encoding")
    exchange["response_encoding"] = encoding if encoding and encoding.lower() != "identity" else None
    decoded, truncated, problem = decode_bounded(encoding, captured.response_chunks, captured.body_limit)
    decoded = body_to_store(captured, decoded, salt)
    if problem:
        rows.problems.append(f"response: {problem}")
    exchange["response_truncated"] = captured.response_truncated or truncated
    exchange["response_size"] = len(decoded)
    exchange["ratelimit"] = ratelimits.parse_unified(headers)
    if "text/event-stream" in content_type.lower():
        exchange["is_sse"] = True
        _sse_response(rows, captured, decoded, encoding, salt)
    else:
        _json_response(rows, decoded)
    if decoded:
        answer = rows.pieces.get(exchange["response_message_hash"]) if exchange["is_sse"] else None
        exchange["response_raw_hash"] = _raw(rows, decoded, answer)


def _sse_response(rows: Rows, captured: CapturedExchange, decoded: bytes, encoding: str | None,
                  salt: bytes) -> None:
    exchange = rows.exchange
    events = sse.parse_events(decoded)
    exchange["sse_event_count"] = len(events)
    if not encoding and captured.chunk_times:
        exchange["sse_event_times"] = _event_times(events, captured)
    assembly = sse.assemble_message(events)
    rows.problems.extend(f"sse: {p}" for p in assembly.problems)
    if assembly.error is not None:
        exchange["response_message"] = {"error": assembly.error}
    if assembly.message is not None:
        # a token split over several deltas is whole again in the answer: redact it there too
        _set_message(rows, redacted_json(captured, assembly.message, salt))
        if assembly.error is not None:
            exchange["response_message"]["error"] = assembly.error
    if captured.complete and not assembly.complete and exchange["status_code"] == 200:
        exchange["error_kind"] = exchange["error_kind"] or "upstream_abort"
        exchange["error_message"] = exchange["error_message"] or "stream ended without message_stop"


def _event_times(events: list[sse.Event], captured: CapturedExchange) -> list[float]:
    """Arrival of each event, in ms after the request started: when the chunk holding its end came in."""
    start = captured.started_at
    times: list[float] = []
    chunk, reached = 0, 0
    sizes = [len(c) for c in captured.response_chunks]
    for event in events:
        while chunk < len(sizes) and reached + sizes[chunk] < event.end:
            reached += sizes[chunk]
            chunk += 1
        at = captured.chunk_times[min(chunk, len(captured.chunk_times) - 1)]
        times.append(round((at - start) * 1000, 3))
    return times


def _json_response(rows: Rows, decoded: bytes) -> None:
    body = parse_json(decoded)
    if isinstance(body, dict) and body.get("type") == "message" and isinstance(body.get("content"), list):
        _set_message(rows, body)
    elif isinstance(body, dict) and body.get("type") == "error":
        rows.exchange["response_message"] = {"error": body.get("error")}


def _set_message(rows: Rows, message: dict[str, Any]) -> None:
    """Store the answer's content as a message piece: the next turn resends it, so it is shared."""
    exchange = rows.exchange
    message, changed = fit_json(message)  # the raw body keeps the answer as sent
    rows.problems.extend(f"response message: {change}" for change in changed)
    answer = {"role": message.get("role", "assistant"), "content": message.get("content", [])}
    digest = piece_hash(answer)
    rows.pieces.setdefault(digest, Piece(digest, "message", compact_json(answer)))
    exchange["response_message_hash"] = digest
    exchange["response_message"] = {k: v for k, v in message.items() if k != "content"}
    exchange["stop_reason"] = message.get("stop_reason")
    exchange.update(sse.usage_of(message))
