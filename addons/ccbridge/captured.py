"""What the proxy hands to storage for one exchange: plain data, copied out of a mitmproxy flow.

Hooks only take references (no copying, no decoding, no parsing); everything costly happens later in the
writer process, in `storage/record.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_BODY_LIMIT = 64 * 1024 * 1024  # capture.max_body_mb's default, in bytes
# A `route` key: the record is a shadow route's answer to the flow it names, stored as an AlternateAnswer.
SHADOW_OF = "shadow_of"


@dataclass
class CapturedExchange:
    flow_id: str
    started_at: float  # epoch seconds
    method: str
    scheme: str
    host: str
    port: int
    path: str  # without the query string
    query: list[tuple[str, str]]
    http_version: str
    request_headers: list[tuple[str, str]]
    request_body: bytes | None  # at most body_limit bytes, as sent (still content-encoded)
    request_done_at: float | None = None
    request_truncated: bool = False  # the request body was longer than body_limit

    status_code: int | None = None
    response_headers: list[tuple[str, str]] | None = None
    first_byte_at: float | None = None
    finished_at: float | None = None
    # The body as it crossed the proxy (still content-encoded), in the chunks it arrived in.
    response_chunks: list[bytes] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)  # epoch seconds, one per chunk
    response_truncated: bool = False  # more arrived than capture.max_body_mb allowed to keep

    complete: bool = False
    error_kind: str | None = None  # client_abort | upstream_abort | timeout | error
    error_message: str | None = None

    # How storage treats this exchange, decided when it was captured (so a replay stores it the same way).
    body_limit: int = DEFAULT_BODY_LIMIT  # bytes kept of each body, before and after decoding
    redact_body_secrets: bool = False  # replace key and token shapes in the bodies with fingerprints

    # Set by routing when a provider answered instead of the flow's own host.
    route: dict[str, Any] | None = None
    provider_request: dict[str, Any] | None = None
    provider_response: bytes | None = None

    def shadow_of(self) -> str | None:
        """The flow id whose shadow answer this record is, or None for an exchange."""
        value = (self.route or {}).get(SHADOW_OF)
        return value if isinstance(value, str) else None
