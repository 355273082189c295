"""Test doubles shared by the unit tests of the addons: a recorder that keeps what it is given, a routed request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ccbridge.captured import CapturedExchange
from ccbridge.routes import Provider, Route
from ccbridge.routing.sidecar import RoutedRequest


@dataclass
class Recorder:
    """What `Capture` needs of the Runtime, with config.yaml's defaults; keeps every submitted record."""

    capture_hosts: tuple[str, ...] = ("api.anthropic.com",)
    max_body_bytes: int = 64 * 1024 * 1024
    read_timeout_s: float = 600.0
    redact_body_secrets: bool = False
    records: list[CapturedExchange] = field(default_factory=list)

    def submit(self, captured: CapturedExchange) -> None:
        self.records.append(captured)


def streamed_request(route: Route, provider: Provider, body: dict[str, Any]) -> RoutedRequest:
    """A streamed request to `provider` as the routing addon registers it, for a sidecar under test."""
    return RoutedRequest(route=route, provider=provider,
                         kwargs={"model": route.model, "messages": body["messages"], "stream": True},
                         body=body, raw_body=json.dumps(body).encode(), stream=True, requested_model=body["model"],
                         upstream_url="http://127.0.0.1:9/v1/messages", upstream_headers=[], info={},
                         provider_response=bytearray())
