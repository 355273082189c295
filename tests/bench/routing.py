"""Routing benchmark: time from the provider's first delta to Claude Code's first text delta, through mitmdump.

A real 2.1.329 subagent request (tools, system prompt, billing block) is routed by its model to the mock
OpenAI server, which stamps `perf_counter()` just before it writes its first content chunk; the client
(same process, so the same clock) notes when the first `text_delta` event arrives. Median over 50 streams,
target <= 5 ms. For scale, the same measurement straight against the mock provider (no proxy).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures import FIXTURES, captured_requests
from tests.support.mock_anthropic import MockAnthropic
from tests.support.mock_openai import MockOpenAI, Pause, chunk, usage
from tests.support.proxy import start_proxy

Result = tuple[str, float, str]
STREAMS = 50
WARM_UP = 5
MARKER = "BENCH-FIRST-DELTA"


def subagent_request() -> tuple[dict[str, str], bytes]:
    record = next(r for r in captured_requests(FIXTURES / "2.1.329" / "subagent-sync.jsonl")
                  if any(k.lower() == "x-claude-code-agent-id" for k, _ in r["headers"]))
    headers = {k: v for k, v in record["headers"] if k.lower() not in ("host", "content-length")}
    return headers, json.dumps(record["body"]).encode()


def sent_at(mock: MockOpenAI, seq: int) -> float:
    return next(t for s, t, data in mock.send_times if s == seq and MARKER.encode() in data)


def first_arrival(response: httpx.Response, needle: bytes) -> float:
    buffer, arrived = b"", None
    for piece in response.iter_raw():  # read to the end, so the connection is reused
        buffer += piece
        if arrived is None and needle in buffer:
            arrived = time.perf_counter()
    assert arrived is not None, f"{needle!r} never arrived"
    return arrived


def delays(mock: MockOpenAI, client: httpx.Client, url: str, headers: dict[str, str], body: bytes,
           needle: bytes) -> list[float]:
    out = []
    for i in range(WARM_UP + STREAMS):
        with client.stream("POST", url, content=body, headers=headers) as response:
            assert response.status_code == 200, response.read()
            arrived = first_arrival(response, needle)
        if i >= WARM_UP:
            out.append((arrived - sent_at(mock, mock.exchanges[-1].seq)) * 1000)
    return out


def run() -> list[Result]:
    headers, body = subagent_request()
    model = json.loads(body)["model"]
    with MockAnthropic() as upstream, MockOpenAI() as provider, tempfile.TemporaryDirectory() as tmp:
        provider.script = [chunk({"role": "assistant", "content": ""}), Pause(0.01), chunk({"content": MARKER}),
                           chunk({"content": " and the rest of the answer."}),
                           chunk(finish_reason="stop", usage=usage(5000, 12))]
        config: dict[str, Any] = {
            "providers": {"mockai": {"base_url": provider.base_url, "api_key": "sk-bench"}},
            "subagents": {"default_provider": "mockai"},
            "models": {model: "gpt-mock"},
            "routing": {"agent_dirs": []},
        }
        with start_proxy(upstream.url, Path(tmp), config) as proxy, httpx.Client(timeout=60) as client:
            routed = delays(provider, client, f"{proxy.url}/v1/messages?beta=true", headers, body, b'"text_delta"')
            assert not upstream.exchanges, "the bench requests were not routed"
        direct_body = json.dumps({"model": "gpt-mock", "stream": True, "messages": []}).encode()
        with httpx.Client(timeout=60) as client:
            direct = delays(provider, client, f"{provider.base_url}/chat/completions",
                            {"content-type": "application/json"}, direct_body, MARKER.encode())
    routed.sort()
    return [
        (f"first delta, provider -> client through the proxy (median of {STREAMS}; target <= 5 ms)",
         statistics.median(routed), "ms"),
        ("first delta through the proxy, 90th percentile", routed[int(len(routed) * 0.9)], "ms"),
        ("first delta straight from the mock provider (median, no proxy)", statistics.median(direct), "ms"),
    ]
