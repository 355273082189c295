"""What ccbridge's addons leave on a flow for each other (`flow.metadata` keys), and who sent its request."""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import http

from .identity import Identity, identify

META_CAPTURED = "ccbridge_captured"  # the CapturedExchange being filled by the capture addon
# Set by routing on flows a provider answers, copied into the record by capture.
META_ROUTE = "ccbridge_route"
META_PROVIDER_REQUEST = "ccbridge_provider_request"
META_PROVIDER_RESPONSE = "ccbridge_provider_response"
META_IDENTITY = "ccbridge_identity"


def identity_of(flow: http.HTTPFlow, body: Any = None) -> Identity:
    """Who sent the flow's request, worked out on first use and then kept in the flow's metadata.

    Pass `body` when the request body is already parsed; otherwise it is parsed here (on first use only).
    """
    who: Identity | None = flow.metadata.get(META_IDENTITY)
    if who is None:
        who = identify(flow.request.headers, _json_body(flow.request) if body is None else body)
        flow.metadata[META_IDENTITY] = who
    return who


def _json_body(request: http.Request) -> Any:
    try:
        return json.loads(request.get_content(strict=False) or b"null")
    except ValueError:  # not JSON: identity then comes from the headers alone
        return None
