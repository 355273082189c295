"""Shadow routing: a copy of a shadowed agent's request goes to another model in the background.

The agent stays on Claude: its flow is not touched and nothing here is awaited by a hook. Each copy is a task
on mitmproxy's event loop that asks the shadow route (`alternate.ask`, with the sidecar's SDK clients) and
hands the answer to storage as a journal record (`CapturedExchange` whose route names the original flow, see
`captured.SHADOW_OF`), which the writer stores as an `AlternateAnswer` of kind "shadow". At most `limit` copies
are in flight; beyond that a copy is dropped and counted, and the count is logged now and then, not per flow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ccbridge.captured import SHADOW_OF, CapturedExchange
from ccbridge.routes import Provider, Route
from ccbridge.routing.alternate import ask
from ccbridge.routing.provider import ProviderClients
from ccbridge.translate import ModelCapabilities

log = logging.getLogger("ccbridge.routing")

KIND = "shadow"
DROP_LOG_INTERVAL = 60.0  # seconds between two warnings about dropped copies


class ShadowCopies:
    """The shadow copies in flight, bounded; what was sent, dropped and lost is counted."""

    def __init__(self, submit: Callable[[CapturedExchange], None], *, limit: int = 4) -> None:
        self.submit = submit
        self.limit = limit  # may change while running (new config)
        self.sent = 0
        self.dropped = 0
        self.redact_body_secrets = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._dropped_logged_at: float | None = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def send(self, flow_id: str, body: dict[str, Any], route: Route, provider: Provider,
             capabilities: ModelCapabilities, *, clients: ProviderClients, timeout: float) -> bool:
        """Start asking `route` for its answer to `body` (the caller's own copy); False when dropped."""
        if len(self._tasks) >= self.limit:
            self.dropped += 1
            self._log_dropped()
            return False
        started = time.time()
        task = asyncio.get_running_loop().create_task(
            self._ask(flow_id, started, body, route, provider, capabilities, clients, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        self.sent += 1
        return True

    async def stop(self) -> None:
        """Cancel the copies still waiting for an answer (they are not stored)."""
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.sent or self.dropped:
            log.info("ccbridge: shadow copies: %s", self.summary(cancelled=len(tasks)))

    def summary(self, cancelled: int = 0) -> str:
        text = f"{self.sent} sent, {self.dropped} dropped (more than routing.shadow_concurrency={self.limit} at once)"
        return f"{text}, {cancelled} cancelled at shutdown" if cancelled else text

    async def _ask(self, flow_id: str, started: float, body: dict[str, Any], route: Route, provider: Provider,
                   capabilities: ModelCapabilities, clients: ProviderClients, timeout: float) -> None:
        columns = await ask(body, route, provider, capabilities, timeout=timeout, clients=clients)
        self.submit(shadow_record(flow_id, started, columns, provider, redact=self.redact_body_secrets))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ccbridge: a shadow copy failed", exc_info=task.exception())

    def _log_dropped(self) -> None:
        now = time.monotonic()
        if self._dropped_logged_at is None or now - self._dropped_logged_at >= DROP_LOG_INTERVAL:
            self._dropped_logged_at = now
            log.warning("ccbridge: shadow copies: %s", self.summary())


def shadow_record(flow_id: str, started: float, columns: dict[str, Any], provider: Provider, *,
                  redact: bool = False) -> CapturedExchange:
    """The journal record of a shadow answer (`alternate.ask`'s columns) to the flow `flow_id`."""
    url = urlsplit(provider.base_url)
    scheme = url.scheme or "https"
    facts = {k: v for k, v in columns.items() if k not in ("request", "raw_response")}
    return CapturedExchange(
        flow_id=f"{KIND}-{flow_id}",
        started_at=started,
        method="POST",
        scheme=scheme,
        host=url.hostname or "",
        port=url.port or (443 if scheme == "https" else 80),
        path=url.path,
        query=[],
        http_version="",
        request_headers=[],
        request_body=None,
        finished_at=time.time(),
        complete=columns.get("error") is None,
        redact_body_secrets=redact,
        route={SHADOW_OF: flow_id, **facts},
        provider_request=columns.get("request"),
        provider_response=columns.get("raw_response"),
    )
