"""The families: bounded labels, the latest rate-limit status, the journal backlog read at scrape time."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ccbridge.metrics.families import OTHER, BoundedLabel, Families, JournalCollector
from ccbridge.prices import Tokens
from ccbridge.ratelimits import parse_unified
from ccbridge.storage.journal import Appender


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_label_values_beyond_the_limit_become_other():
    label = BoundedLabel(limit=2)
    assert [label(v) for v in ("a", "b", "c", "a", None)] == ["a", "b", OTHER, "a", OTHER]
    families = Families(CollectorRegistry(), label_limit=3)
    for n in range(10):
        families.observe_request("anthropic", "200", f"model-{n}")
    found = samples(families.registry)
    models = {dict(labels)["model"] for name, labels in found if name == "ccbridge_requests_total"}
    assert models == {"model-0", "model-1", "model-2", OTHER}
    assert found[("ccbridge_requests_total", frozenset({("route", "anthropic"), ("status", "200"),
                                                         ("model", OTHER)}))] == 7


def test_tokens_by_kind_and_cost_under_the_same_labels():
    families = Families(CollectorRegistry())
    labels = families.observe_tokens("claude-x", "main", "", Tokens(input=3, output=4, cache_read=5))
    families.record_cost(labels, 0.25)
    families.record_cost(labels, None)
    found = samples(families.registry)
    base = {("model", "claude-x"), ("agent", "main"), ("key", "")}
    assert found[("ccbridge_tokens_total", frozenset(base | {("kind", "cache_read")}))] == 5
    assert ("ccbridge_tokens_total", frozenset(base | {("kind", "cache_creation")})) not in found
    assert found[("ccbridge_cost_usd_total", frozenset(base))] == 0.25
    assert found[("ccbridge_unpriced_answers_total", frozenset({("model", "claude-x")}))] == 1


def test_the_latest_rate_limit_status_is_1_and_the_previous_one_0():
    families = Families(CollectorRegistry())
    for status, used in (("allowed", "0.5"), ("rejected", "1.0")):
        families.observe_ratelimit(parse_unified([("anthropic-ratelimit-unified-5h-status", status),
                                                  ("anthropic-ratelimit-unified-5h-utilization", used),
                                                  ("anthropic-ratelimit-unified-status", status)]) or {})
    found = samples(families.registry)
    assert found[("ccbridge_ratelimit_utilization", frozenset({("window", "5h")}))] == 1.0
    assert found[("ccbridge_ratelimit_status", frozenset({("window", "5h"), ("status", "rejected")}))] == 1
    assert found[("ccbridge_ratelimit_status", frozenset({("window", "5h"), ("status", "allowed")}))] == 0
    assert found[("ccbridge_ratelimit_status", frozenset({("window", "overall"), ("status", "rejected")}))] == 1


def test_the_journal_backlog_is_what_the_writer_has_not_committed(tmp_path: Path):
    journal = Appender(tmp_path)
    try:
        writer = SimpleNamespace(directory=tmp_path, lost=1)
        registry = CollectorRegistry()
        registry.register(JournalCollector(lambda: writer))
        for payload in (b"a" * 100, b"b" * 50):
            journal.append(payload)
        found = samples(registry)
        assert found[("ccbridge_journal_pending_records", frozenset())] == 2
        assert found[("ccbridge_journal_pending_bytes", frozenset())] == 150 + 2 * 20  # with the record headers
        assert found[("ccbridge_journal_lost_total", frozenset())] == 1
    finally:
        journal.close()


def test_no_writer_no_backlog_samples():
    registry = CollectorRegistry()
    registry.register(JournalCollector(lambda: None))
    assert not [name for name, _ in samples(registry) if name.startswith("ccbridge_journal")]
