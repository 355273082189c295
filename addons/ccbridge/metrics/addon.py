"""The metrics addon: Prometheus metrics of the traffic ccbridge records, served from the proxy process.

    mitmdump -s addons/bridge.py --set ccbridge_config=config.yaml   # with `metrics: {port: 9464}`

`metrics.port` turns it on (off by default); `/metrics` is served on `metrics.host` (loopback by default) by
prometheus_client's own HTTP server on a thread, from a registry of ccbridge's own. It counts the flows the
capture addon records: it takes the capture's record in `requestheaders` and reads the answer's usage from
the chunks the tee kept, in `response` (two SSE lines or one JSON object: `usage.py`). Every hook swallows
its own failures: a metric never breaks traffic.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from mitmproxy import exceptions, http
from prometheus_client import CollectorRegistry, start_http_server

from ..capture import error_kind
from ..captured import CapturedExchange
from ..flow_meta import META_CAPTURED, META_ROUTE, identity_of, ours
from ..ratelimits import parse_unified
from ..settings import Settings
from ..storage.process import WriterProcess
from .families import Families, JournalCollector
from .labels import agent_of, key_of, known_model, route_of
from .pricing import Pricer, priced
from .usage import answer_usage

log = logging.getLogger("ccbridge.metrics")

META_METRICS = "ccbridge_metrics"  # the capture record this addon reads the answer from


class Source(Protocol):
    """What the metrics come from besides the flows: the Runtime (config.yaml, the storage writer)."""

    config: Settings
    writer: WriterProcess | None


class Metrics:
    """mitmproxy addon: count every recorded exchange and serve the counts to Prometheus."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.registry = CollectorRegistry()
        self.families = Families(self.registry)
        self.registry.register(JournalCollector(lambda: self.source.writer))
        self._server: Any = None
        self._thread: Any = None
        self._address: tuple[str, int] | None = None
        self.pricer: Pricer | None = None

    def configure(self, updated: set[str]) -> None:
        settings = self.source.config.metrics
        wanted = None if settings.port is None else (settings.host, settings.port)
        if wanted == self._address:
            return
        self._stop()
        if wanted is None:
            return
        host, port = wanted
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except Exception as exc:  # in use, or an address this machine does not have
            raise exceptions.OptionsError(f"ccbridge metrics.port {port} on {host}: cannot listen: {exc}") from exc
        self._address = wanted
        self.pricer = Pricer(self.families.record_cost, lambda: self.source.config.prices)
        shown = f"[{host}]" if ":" in host else host
        log.info("ccbridge: Prometheus metrics at http://%s:%d/metrics", shown, port)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self._server is None:
            return  # metrics are off: no work at all
        captured: CapturedExchange | None = ours(flow).get(META_CAPTURED)
        if captured is None:
            return  # not recorded (another host in explicit-proxy mode): not counted either
        ours(flow)[META_METRICS] = captured
        self.families.in_flight.inc()

    def response(self, flow: http.HTTPFlow) -> None:
        captured: CapturedExchange | None = ours(flow).pop(META_METRICS, None)
        if captured is None:
            return
        self.families.in_flight.dec()
        try:
            self._count(flow, captured, None)
        except Exception:
            log.exception("ccbridge: metrics failed for flow %s", flow.id)

    def error(self, flow: http.HTTPFlow) -> None:
        captured: CapturedExchange | None = ours(flow).pop(META_METRICS, None)
        if captured is None:
            return
        self.families.in_flight.dec()
        try:
            self._count(flow, captured, error_kind(flow.error.msg if flow.error else ""))
        except Exception:
            log.exception("ccbridge: metrics failed for failed flow %s", flow.id)

    def done(self) -> None:
        self._stop()

    def _count(self, flow: http.HTTPFlow, captured: CapturedExchange, failure: str | None) -> None:
        state = ours(flow)
        request, response = flow.request, flow.response
        route = route_of(state)
        body = request.raw_content
        model = known_model(state, body)
        answer = None
        if response is not None:
            answer = answer_usage(captured.response_chunks, response.headers.get("content-type"),
                                  response.headers.get("content-encoding"))
            unified = parse_unified(response.headers.items(multi=True))
            if unified is not None:
                self.families.observe_ratelimit(unified)
        if model is None and answer is not None:
            model = answer.model
        if model is None:  # parses the request; rare: a client that sends `model` late, and got no answer
            model = identity_of(flow).model
        status = str(response.status_code) if response is not None else failure or "error"
        self.families.observe_request(route, status, model)
        started = request.timestamp_start
        first_byte = response.timestamp_start - started if response is not None and response.timestamp_start else None
        ended = (response.timestamp_end if response is not None and failure is None else None) or time.time()
        self.families.observe_times(route, first_byte, ended - started)
        if answer is not None and answer.tokens.total:
            labels = self.families.observe_tokens(model, agent_of(state, request.headers, body), key_of(state),
                                                  answer.tokens)
            if self.pricer is not None:
                self.pricer.submit(priced(labels, state.get(META_ROUTE), model or answer.model, answer.tokens))

    def _stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(5)
        if self.pricer is not None:
            self.pricer.close()
        self._server = self._thread = self.pricer = None
        self._address = None

