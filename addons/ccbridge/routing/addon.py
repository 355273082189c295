"""The routing addon: answers configured Claude Code subagents (or requested models) with another provider.

    mitmdump -s addons/bridge.py --mode reverse:https://api.anthropic.com --set ccbridge_config=config.yaml

with `subagents.mappings` and/or `models` in config.yaml (see config.yaml.example). Until routing is enabled
it leaves every flow alone.

`request`: a `POST /v1/messages` whose subagent (rules `agent_call`, `system_prompt`) or requested model
(rule `model`) has a route is translated to a Chat Completions call (a Responses call for a provider with
`api: responses`), registered with the in-process server (`sidecar.py`, which says why it exists) and
pointed at it; nothing else of the flow changes, so the capture addon (after this one in the chain, having
taken its copy of the request in `requestheaders`) records what Claude Code sent. A
`POST /v1/messages/count_tokens` for such a subagent or model is answered here with an estimate, never sent
to Anthropic (which may not be reachable with the user's credentials).
A subagent listed in `subagents.shadow` (and not routed) stays on Claude, its flow untouched; a copy of its
request goes to the shadow route in the background (`shadow.py`).
`response`: the Agent/Task calls in the answers Anthropic gives are remembered, so the subagent requests
they start can be recognised by rule 1.

Any failure of ours leaves the flow as it was: it goes to Anthropic (fail-open), logged once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable
from typing import Any

from mitmproxy import http
from mitmproxy.net import encoding

from ccbridge.captured import CapturedExchange
from ccbridge.claude_code import AGENT_HEADER, DELEGATION_TOOLS, SUBAGENT_MARK
from ccbridge.flow_meta import (
    META_CAPTURED,
    META_PROVIDER_REQUEST,
    META_PROVIDER_RESPONSE,
    META_ROUTE,
    identity_of,
    ours,
)
from ccbridge.identity import Identity
from ccbridge.routes import Route, RoutingSettings
from ccbridge.routing.agents import (
    AgentDefinition,
    AgentDefinitions,
    AgentMemory,
    Recognition,
    agent_calls_in,
)
from ccbridge.routing.shadow import ShadowCopies
from ccbridge.routing.sidecar import TOKEN_HEADER, RoutedRequest, Sidecar
from ccbridge.routing.translation import provider_request
from ccbridge.sse import assemble_message, parse_events
from ccbridge.translate import count_input_tokens, estimate_prompt_tokens

log = logging.getLogger("ccbridge.routing")

META_TOKEN = "ccbridge_route_token"
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_DELEGATION_MARKERS = tuple(f'"{name}"'.encode() for name in DELEGATION_TOOLS)
_SUBAGENT_MARK = SUBAGENT_MARK.encode()


class Routing:
    """mitmproxy addon: points routed flows at the sidecar and learns the parents' Agent calls."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.settings = RoutingSettings()
        self.memory = AgentMemory()
        self.definitions = AgentDefinitions(())
        self.sidecar: Sidecar | None = None
        self.shadows = ShadowCopies(lambda answer: self.runtime.submit(answer))  # the runtime's writer of the day
        self._definitions_lock = threading.Lock()
        self._running = False

    # --- lifecycle ----------------------------------------------------------------------------------

    def configure(self, updated: set[str]) -> None:
        settings = getattr(self.runtime.config, "routing", None)
        if not isinstance(settings, RoutingSettings) or settings == self.settings:
            return
        if settings.agent_dirs != self.definitions.dirs:
            self.definitions = AgentDefinitions(settings.agent_dirs)
        if self.sidecar is not None and settings.listen_port not in (0, self.sidecar.port):
            log.warning("ccbridge: routing.listen_port %d takes effect at the next start; the routing server "
                        "stays on port %s", settings.listen_port, self.sidecar.port)
        self.settings = settings
        self.shadows.limit = settings.shadow_concurrency
        self.shadows.redact_body_secrets = bool(getattr(self.runtime, "redact_body_secrets", False))
        if self.sidecar is not None:
            self.sidecar.ping_interval, self.sidecar.timeout = settings.ping_interval, settings.timeout
        elif self._running and settings.enabled:
            self._spawn(self._start_sidecar())

    async def running(self) -> None:
        self._running = True
        if self.settings.enabled and self.sidecar is None:
            await self._start_sidecar()

    async def done(self) -> None:
        self._running = False
        await self.shadows.stop()
        sidecar, self.sidecar = self.sidecar, None
        if sidecar is not None:
            await sidecar.stop()

    async def _start_sidecar(self) -> None:
        settings = self.settings
        sidecar = Sidecar(ping_interval=settings.ping_interval, timeout=settings.timeout)
        try:
            await sidecar.start(port=settings.listen_port)
        except OSError as exc:
            raise OSError(f"ccbridge: the routing server cannot listen on 127.0.0.1:{settings.listen_port} "
                          f"(routing.listen_port): {exc}") from exc
        if self.sidecar is not None:  # started meanwhile (configure and running both asked)
            await sidecar.stop()
            return
        self.sidecar = sidecar
        log.info("ccbridge: routing %d agent(s) and %d model pattern(s), shadowing %d agent(s); answering on "
                 "127.0.0.1:%s", len(settings.agents), len(settings.models), len(settings.shadows), sidecar.port)

    @staticmethod
    def _spawn(coroutine: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coroutine.close()
            return
        task = loop.create_task(coroutine)
        task.add_done_callback(_log_failure)
        _background.add(task)
        task.add_done_callback(_background.discard)

    # --- hooks --------------------------------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # Synchronous for the common case: only a flow that may be routed gets a coroutine (which mitmproxy
        # awaits), so traffic that is not routed costs a few attribute checks.
        sidecar = self.sidecar
        if sidecar is None or sidecar.port is None or not self.settings.enabled or not self._candidate(flow):
            return None
        return self._route(flow, sidecar)

    async def _route(self, flow: http.HTTPFlow, sidecar: Sidecar) -> None:
        try:
            if _path(flow) == COUNT_TOKENS_PATH:
                await self._count_tokens(flow)
                return
            routed = await self._decide(flow, sidecar)
            if routed is None or sidecar.port is None:  # not routed, or shut down meanwhile
                return
            token = sidecar.register(routed)
            ours(flow)[META_ROUTE] = routed.info
            ours(flow)[META_PROVIDER_REQUEST] = routed.kwargs
            ours(flow)[META_PROVIDER_RESPONSE] = routed.provider_response
            ours(flow)[META_TOKEN] = token
            flow.request.scheme = "http"
            flow.request.host = "127.0.0.1"
            flow.request.port = sidecar.port
            flow.request.headers[TOKEN_HEADER] = token
        except Exception:
            for key in (META_ROUTE, META_PROVIDER_REQUEST, META_PROVIDER_RESPONSE, META_TOKEN):
                ours(flow).pop(key, None)
            log.exception("ccbridge: routing failed for %s %s; it goes to Anthropic unchanged",
                          flow.request.method, flow.request.pretty_url)

    def response(self, flow: http.HTTPFlow) -> None:
        """Remember the Agent/Task calls in an answer that did not come from a provider."""
        settings = self.settings
        if not settings.enabled or not (settings.agents or settings.shadows) or META_ROUTE in ours(flow):
            return
        try:
            self._learn_agent_calls(flow)
        except Exception:
            log.exception("ccbridge: could not read agent calls from the answer to %s", flow.request.pretty_url)

    def error(self, flow: http.HTTPFlow) -> None:
        if self.sidecar is not None:
            self.sidecar.forget(ours(flow).get(META_TOKEN))

    # --- which requests are routed ------------------------------------------------------------------

    def _candidate(self, flow: http.HTTPFlow) -> bool:
        """A Messages (or count_tokens) request from a subagent (when agents are mapped), or any (when models are)."""
        request = flow.request
        if request.method != "POST" or _path(flow) not in (MESSAGES_PATH, COUNT_TOKENS_PATH):
            return False
        if self.settings.models:
            return True
        return bool(self.settings.agents or self.settings.shadows) and (
            AGENT_HEADER in request.headers or _SUBAGENT_MARK in (request.raw_content or b"")
        )

    async def _count_tokens(self, flow: http.HTTPFlow) -> None:
        """Answer a token count for a routed subagent or model with the estimate for its provider's request."""
        chosen = await self._choose(flow)
        if chosen is None:
            return
        body, route, info, _ = chosen
        tokens = count_input_tokens(body, self.settings.capabilities_of(route), model=route.model)
        ours(flow)[META_ROUTE] = {**info, "answered": "locally (count_tokens estimate)"}
        flow.response = http.Response.make(200, json.dumps({"input_tokens": tokens}),
                                           {"content-type": "application/json"})

    async def _decide(self, flow: http.HTTPFlow, sidecar: Sidecar) -> RoutedRequest | None:
        chosen = await self._choose(flow, shadow_with=sidecar)
        if chosen is None:
            return None
        body, route, info, who = chosen
        request = flow.request
        settings = self.settings
        provider = settings.providers[route.provider]
        kwargs = provider_request(body, provider, settings.capabilities_of(route), model=route.model,
                                  session_id=who.session_id)
        return RoutedRequest(
            route=route,
            provider=provider,
            kwargs=kwargs,
            body=body,
            raw_body=request.raw_content or b"",
            stream=body.get("stream") is True,
            requested_model=info["requested_model"],
            upstream_url=request.url,
            upstream_headers=list(request.headers.items(multi=True)),
            info=info,
            provider_response=bytearray(),
            input_tokens_estimate=estimate_prompt_tokens(kwargs),
        )

    async def _choose(self, flow: http.HTTPFlow, *, shadow_with: Sidecar | None = None
                      ) -> tuple[dict[str, Any], Route, dict[str, Any], Identity] | None:
        """The request's body, route, route record and sender, when a subagent or model route applies.

        `shadow_with`: when no route applies and the subagent has a shadow route, a copy of the request is sent
        to it with this sidecar's clients.
        """
        settings = self.settings
        body = json.loads(flow.request.get_content(strict=False) or b"null")
        if not isinstance(body, dict):
            return None
        who = identity_of(flow, body)
        requested_model = str(body.get("model") or "")
        route: Route | None = None
        recognition = Recognition()
        if who.is_subagent and (settings.agents or settings.shadows):
            recognition = await self._recognise(body, who)
            route = settings.route_for_agent(recognition.name)
        rule: str | None = recognition.rule if route is not None else None
        if route is None:
            route = settings.route_for_model(requested_model)
            rule = "model"
        if route is None:
            shadow = settings.shadow_for_agent(recognition.name)
            if shadow is not None and shadow_with is not None:
                self._shadow(flow, body, shadow, shadow_with)
            return None
        provider = settings.providers[route.provider]
        info = {
            "rule": rule,
            "agent": recognition.name,
            "agent_id": who.agent_id,
            "provider": provider.name,
            "kind": provider.kind,
            "api": provider.api,
            "model": route.model,
            "requested_model": requested_model,
            "fallback": route.fallback,
            "fell_back": False,
        }
        return body, route, info, who

    def _shadow(self, flow: http.HTTPFlow, body: dict[str, Any], route: Route, sidecar: Sidecar) -> None:
        """Hand a copy of the request to the shadow route in the background; the flow goes on unchanged."""
        settings = self.settings
        self.shadows.send(flow.id, body, route, settings.providers[route.provider], settings.capabilities_of(route),
                          clients=sidecar.clients, timeout=settings.timeout)

    async def _recognise(self, body: dict[str, Any], who: Identity) -> Recognition:
        known = self.memory.agent(who.agent_id)
        if known is not None:  # a later turn of a subagent: routed like its first
            return known
        definitions = await asyncio.to_thread(self._load_definitions)  # reads files: not on the event loop
        return self.memory.recognise(body, who, definitions)

    def _load_definitions(self) -> tuple[AgentDefinition, ...]:
        with self._definitions_lock:
            return tuple(self.definitions)

    # --- learning the parent's calls ----------------------------------------------------------------

    def _learn_agent_calls(self, flow: http.HTTPFlow) -> None:
        request, response = flow.request, flow.response
        if response is None or response.status_code != 200 or request.method != "POST":
            return
        if _path(flow) != MESSAGES_PATH:
            return
        captured: CapturedExchange | None = ours(flow).get(META_CAPTURED)
        if captured is not None and captured.response_chunks:
            data = b"".join(captured.response_chunks)
        else:
            data = response.raw_content or b""
        content_encoding = response.headers.get("content-encoding", "").strip().lower()
        if content_encoding and content_encoding != "identity":
            decoded = encoding.decode(data, content_encoding)
            # mitmproxy hands back text for a text codec named as the content-encoding
            data = decoded.encode() if isinstance(decoded, str) else decoded
        if not any(marker in data for marker in _DELEGATION_MARKERS):
            return  # cheap: most answers call no agent
        if "text/event-stream" in response.headers.get("content-type", ""):
            message = assemble_message(parse_events(data)).message
        else:
            message = json.loads(data)
        calls = agent_calls_in(message) if isinstance(message, dict) else []
        if not calls:
            return
        self.memory.remember_calls(identity_of(flow).session_id, calls)


def _path(flow: http.HTTPFlow) -> str:
    return flow.request.path.split("?", 1)[0]


_background: set[asyncio.Task[None]] = set()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("ccbridge: routing server failed to (re)start", exc_info=task.exception())
