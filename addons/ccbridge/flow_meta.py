"""What ccbridge's addons keep on a flow for each other, and who sent its request.

Not in `ours(flow)`: mitmproxy copies that with the flow and saves it (`mitmdump -w`), and what we keep
(the record being filled, timers, the identity) is neither serializable nor cheap to copy. `ours(flow)` is
a dictionary that lives as long as the flow does.
"""

from __future__ import annotations

import json
from typing import Any
from weakref import WeakKeyDictionary

from mitmproxy import http

from .identity import Identity, identify

META_CAPTURED = "ccbridge_captured"  # the CapturedExchange being filled by the capture addon
# Set by routing on flows a provider answers, copied into the record by capture.
META_ROUTE = "ccbridge_route"
META_PROVIDER_REQUEST = "ccbridge_provider_request"
META_PROVIDER_RESPONSE = "ccbridge_provider_response"
META_IDENTITY = "ccbridge_identity"
META_GATEWAY_KEY = "ccbridge_gateway_key"  # the name of the gateway key a request came with

_STATE: WeakKeyDictionary[http.HTTPFlow, dict[str, Any]] = WeakKeyDictionary()


def ours(flow: http.HTTPFlow) -> dict[str, Any]:
    """What ccbridge keeps for `flow` (by the META_* keys), gone with the flow."""
    state = _STATE.get(flow)
    if state is None:
        state = _STATE[flow] = {}
    return state


def identity_of(flow: http.HTTPFlow, body: Any = None) -> Identity:
    """Who sent the flow's request, worked out on first use and then kept with the flow.

    Pass `body` when the request body is already parsed; otherwise it is parsed here (on first use only).
    """
    who: Identity | None = ours(flow).get(META_IDENTITY)
    if who is None:
        who = identify(flow.request.headers, _json_body(flow.request) if body is None else body)
        ours(flow)[META_IDENTITY] = who
    return who


def _json_body(request: http.Request) -> Any:
    try:
        return json.loads(request.get_content(strict=False) or b"null")
    except ValueError:  # not JSON: identity then comes from the headers alone
        return None
