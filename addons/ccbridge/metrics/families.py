"""The Prometheus families the proxy exports, on a registry of their own, with bounded label values."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..prices import Tokens
from ..storage.drain import read_status
from ..storage.journal import START, Position, Reader

MAX_LABEL_VALUES = 200  # distinct values kept per label; later ones are counted as OTHER
MAX_LABEL_LENGTH = 120
OTHER = "other"
TTFB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_creation")
SUMMARY_WINDOW = "overall"  # the window label of the rate limit's summary status (the one without a claim)


class BoundedLabel:
    """Label values as given until `limit` distinct ones were seen; every later one is OTHER."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        text = (value or "")[:MAX_LABEL_LENGTH]
        if text in self._seen:
            return text
        with self._lock:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(text)
        return text


class Families:
    """Every family, registered on `registry`; `observe_*` take plain values from the addon."""

    def __init__(self, registry: CollectorRegistry, label_limit: int = MAX_LABEL_VALUES) -> None:
        self.registry = registry
        self.model, self.agent, self.key, self.route = (BoundedLabel(label_limit) for _ in range(4))
        self.window = BoundedLabel(label_limit)
        self.requests = Counter("ccbridge_requests", "Requests answered, by route, HTTP status (or the error kind "
                                "when no answer came) and requested model.", ["route", "status", "model"],
                                registry=registry)
        self.tokens = Counter("ccbridge_tokens", "Tokens the answers reported, by kind.",
                              ["model", "agent", "key", "kind"], registry=registry)
        self.cost = Counter("ccbridge_cost_usd", "What the answers cost in USD (where a price is known).",
                            ["model", "agent", "key"], registry=registry)
        self.unpriced = Counter("ccbridge_unpriced_answers", "Answers with tokens but no known price.", ["model"],
                                registry=registry)
        self.first_byte = Histogram("ccbridge_time_to_first_byte_seconds", "From the request's start to the "
                                    "answer's first byte.", ["route"], buckets=TTFB_BUCKETS, registry=registry)
        self.duration = Histogram("ccbridge_request_duration_seconds", "From the request's start to the answer's "
                                  "end (or the error).", ["route"], buckets=DURATION_BUCKETS, registry=registry)
        self.in_flight = Gauge("ccbridge_requests_in_flight", "Requests started and not yet answered.",
                               registry=registry)
        self.utilization = Gauge("ccbridge_ratelimit_utilization", "The latest rate-limit utilisation (0..1) "
                                 "Anthropic reported, by window.", ["window"], registry=registry)
        self.limit_status = Gauge("ccbridge_ratelimit_status", "1 for the latest rate-limit status Anthropic "
                                  "reported per window, 0 for statuses seen before.", ["window", "status"],
                                  registry=registry)
        self._statuses: dict[str, str] = {}
        self._status_lock = threading.Lock()

    def observe_request(self, route: str, status: str, model: str | None) -> None:
        self.requests.labels(self.route(route), status, self.model(model)).inc()

    def observe_times(self, route: str, first_byte: float | None, duration: float | None) -> None:
        label = self.route(route)
        if first_byte is not None and first_byte >= 0:
            self.first_byte.labels(label).observe(first_byte)
        if duration is not None and duration >= 0:
            self.duration.labels(label).observe(duration)

    def observe_tokens(self, model: str | None, agent: str, key: str, tokens: Tokens) -> tuple[str, str, str]:
        """Count the tokens; returns the (bounded) labels their cost is to be recorded under."""
        labels = (self.model(model), self.agent(agent), self.key(key))
        for kind, count in zip(TOKEN_KINDS, (tokens.input, tokens.output, tokens.cache_read, tokens.cache_write),
                               strict=True):
            if count:
                self.tokens.labels(*labels, kind).inc(count)
        return labels

    def record_cost(self, labels: tuple[str, ...], usd: float | None) -> None:
        """Add an answer's price (None: no price is known for its model)."""
        if usd is None:
            self.unpriced.labels(labels[0]).inc()
        else:
            self.cost.labels(*labels).inc(usd)

    def observe_ratelimit(self, unified: Mapping[str, Any]) -> None:
        """The parsed `anthropic-ratelimit-unified-*` headers (ratelimits.parse_unified)."""
        claims = unified.get("claims")
        windows = dict(claims) if isinstance(claims, Mapping) else {}
        for window, fields in windows.items():
            if not isinstance(fields, Mapping):
                continue
            utilization = fields.get("utilization")
            if isinstance(utilization, int | float) and not isinstance(utilization, bool):
                self.utilization.labels(self.window(window)).set(utilization)
            self._set_status(window, fields.get("status"))
        self._set_status(SUMMARY_WINDOW, unified.get("status"))

    def _set_status(self, window: str, status: Any) -> None:
        if not isinstance(status, str) or not status:
            return
        label = self.window(window)
        with self._status_lock:
            previous = self._statuses.get(label)
            if previous is not None and previous != status:
                self.limit_status.labels(label, previous).set(0)
            self._statuses[label] = status
            self.limit_status.labels(label, status[:MAX_LABEL_LENGTH]).set(1)


class JournalCollector(Collector):
    """The storage backlog, read at scrape time: what the journal holds that the database has not committed."""

    def __init__(self, writer: Callable[[], Any]) -> None:
        self.writer = writer  # the current WriterProcess, or None while storage is closed

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        records = GaugeMetricFamily("ccbridge_journal_pending_records", "Exchanges appended to the journal "
                                    "and not yet committed to the database.")
        size = GaugeMetricFamily("ccbridge_journal_pending_bytes", "Journal bytes not yet committed to the "
                                 "database.")
        lost = CounterMetricFamily("ccbridge_journal_lost", "Exchanges that could not be appended to the journal "
                                   "(its disk failed), since the proxy started.")
        writer = self.writer()
        if writer is not None:
            found = read_status(writer.directory).get("position")
            backlog = Reader(writer.directory).backlog(Position(*found) if found else START)
            records.add_metric([], backlog.records)
            size.add_metric([], backlog.bytes)
            lost.add_metric([], writer.lost)
        yield records
        yield size
        yield lost

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return iter(())  # collected only at scrape time: no file is read when the collector is registered
