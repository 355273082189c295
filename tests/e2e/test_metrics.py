"""Prometheus metrics from a real mitmdump: /metrics parses and its counts equal what the test sent."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccbridge.prices import Tokens, cost_usd
from tests.support.browser import free_port
from tests.support.mock_anthropic import MockAnthropic, error_reply, message_events, sse_reply, text_block
from tests.support.proxy import ADDON, ProxyProcess, mitmdump_bin, start_proxy
from tests.support.routed import sdk

pytestmark = pytest.mark.e2e

MODEL = "claude-sonnet-4-5"
MOCK_TOKENS = Tokens(input=2_095, output=42, cache_read=13_000, cache_write=1_536)  # mock_anthropic.usage()
LIMITS = [("anthropic-ratelimit-unified-status", "allowed"),
          ("anthropic-ratelimit-unified-5h-status", "allowed_warning"),
          ("anthropic-ratelimit-unified-5h-utilization", "0.82"),
          ("anthropic-ratelimit-unified-7d-status", "allowed"),
          ("anthropic-ratelimit-unified-7d-utilization", "0.12")]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


@pytest.fixture
def mock() -> Iterator[MockAnthropic]:
    with MockAnthropic() as server:
        yield server


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def proxy(mock: MockAnthropic, metrics_port: int, tmp_path: Path) -> Iterator[ProxyProcess]:
    with start_proxy(mock.url, tmp_path, {"metrics": {"port": metrics_port}}) as running:
        yield running


def send_traffic(client: anthropic.Anthropic, mock: MockAnthropic) -> None:
    """Two streamed answers, two plain ones, one streamed with rate-limit headers, a 529 and a 400."""
    ask = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}
    for _ in range(2):
        with client.messages.stream(**ask) as stream:  # type: ignore[arg-type]
            stream.get_final_message()
        client.messages.create(**ask)  # type: ignore[arg-type]
    mock.queue(sse_reply(message_events([text_block("limited")], model=MODEL), headers=LIMITS))
    with client.messages.stream(**ask) as stream:  # type: ignore[arg-type]
        stream.get_final_message()
    mock.queue(error_reply(529, "overloaded_error", "Overloaded"))
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(**ask)  # type: ignore[arg-type]
    mock.queue(error_reply(400, "invalid_request_error", "max_tokens: too large"))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**ask)  # type: ignore[arg-type]


def test_metrics_count_what_was_sent(proxy: ProxyProcess, mock: MockAnthropic, metrics_port: int):
    with sdk(proxy.url) as client:
        send_traffic(client, mock)
    assert f"Prometheus metrics at http://127.0.0.1:{metrics_port}/metrics" in proxy.log()
    samples = scrape(metrics_port)

    requests = "ccbridge_requests_total"
    assert value(samples, requests, route="anthropic", status="200", model=MODEL) == 5
    assert value(samples, requests, route="anthropic", status="529", model=MODEL) == 1
    assert value(samples, requests, route="anthropic", status="400", model=MODEL) == 1
    assert total(samples, requests) == 7

    answered = {"model": MODEL, "agent": "main", "key": ""}
    tokens = "ccbridge_tokens_total"
    assert value(samples, tokens, **answered, kind="input") == 5 * MOCK_TOKENS.input
    assert value(samples, tokens, **answered, kind="output") == 5 * MOCK_TOKENS.output
    assert value(samples, tokens, **answered, kind="cache_read") == 5 * MOCK_TOKENS.cache_read
    assert value(samples, tokens, **answered, kind="cache_creation") == 5 * MOCK_TOKENS.cache_write

    for histogram in ("ccbridge_time_to_first_byte_seconds", "ccbridge_request_duration_seconds"):
        assert value(samples, f"{histogram}_count", route="anthropic") == 7
        assert value(samples, f"{histogram}_bucket", route="anthropic", le="+Inf") == 7
    assert value(samples, "ccbridge_requests_in_flight") == 0

    assert value(samples, "ccbridge_ratelimit_utilization", window="5h") == pytest.approx(0.82)
    assert value(samples, "ccbridge_ratelimit_utilization", window="7d") == pytest.approx(0.12)
    assert value(samples, "ccbridge_ratelimit_status", window="5h", status="allowed_warning") == 1
    assert value(samples, "ccbridge_ratelimit_status", window="overall", status="allowed") == 1

    # prices are worked out on a thread of their own: wait (bounded) for the five answers' cost
    expected = 5 * float(cost_usd("anthropic", MODEL, MOCK_TOKENS) or 0)
    assert expected > 0
    deadline = time.monotonic() + 20
    while (value(samples, "ccbridge_cost_usd_total", **answered) or 0) < expected * 0.999 \
            and time.monotonic() < deadline:
        time.sleep(0.1)
        samples = scrape(metrics_port)
    assert value(samples, "ccbridge_cost_usd_total", **answered) == pytest.approx(expected)

    # the writer catches up: nothing stays pending in the journal
    while value(samples, "ccbridge_journal_pending_records") != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        samples = scrape(metrics_port)
    assert value(samples, "ccbridge_journal_pending_records") == 0
    assert value(samples, "ccbridge_journal_pending_bytes") == 0
    assert proxy.stored_count() == 7


def test_no_metrics_port_serves_nothing(mock: MockAnthropic, metrics_port: int, tmp_path: Path):
    with start_proxy(mock.url, tmp_path, {"metrics": {"host": "127.0.0.1"}}) as proxy, sdk(proxy.url) as client:
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
    assert "Prometheus metrics at" not in proxy.log()


def start(tmp_path: Path, config_text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(config_text)
    args = [str(mitmdump_bin()), "-s", str(ADDON), "--mode", "reverse:http://127.0.0.1:9", "--listen-host",
            "127.0.0.1", "--listen-port", "0", "--set", f"confdir={tmp_path / 'confdir'}",
            "--set", f"ccbridge_config={path}", "--set", f"ccbridge_journal_dir={tmp_path / 'journal'}",
            "--set", f"ccbridge_storage_url=sqlite:///{tmp_path / 'cc.db'}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_a_bad_metrics_port_stops_start_up_naming_the_key(tmp_path: Path):
    result = start(tmp_path, "metrics:\n  port: 70000\n")
    assert result.returncode != 0
    assert "metrics.port: expected 1..65535" in result.stdout + result.stderr


def test_a_metrics_port_in_use_stops_start_up_naming_the_key(tmp_path: Path, metrics_port: int):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", metrics_port))
        taken.listen()
        result = start(tmp_path, f"metrics:\n  port: {metrics_port}\n")
    assert result.returncode != 0
    assert f"metrics.port {metrics_port} on 127.0.0.1: cannot listen" in result.stdout + result.stderr
