"""Costs match genai-prices to the cent, cache read and write included; unknown models cost None."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from genai_prices import Usage, calc_price
from sqlalchemy.engine import Engine

from ccbridge.prices import ANTHROPIC, cost_usd
from tests.support.builders import Conversation, text, user, write
from viewer import costs

CASES = [
    # model, provider, input (uncached), output, cache read, cache write, of which 1h
    ("claude-opus-4-1", "anthropic", 1_200, 800, 50_000, 4_000, 0),
    ("claude-sonnet-4-5", "anthropic", 3_000, 1_500, 120_000, 10_000, 2_000),
    ("claude-sonnet-4-5", "anthropic", 250_000, 1_000, 0, 0, 0),  # long-context tier
    ("claude-haiku-4-5", "anthropic", 10, 5, 0, 20_000, 0),
    ("gpt-4o", "openai", 5_000, 700, 2_048, 0, 0),
    ("gpt-5", "openai", 12_345, 6_789, 1_000, 0, 0),
]


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


@pytest.mark.parametrize(("model", "provider", "inp", "out", "read", "write_", "write_1h"), CASES)
def test_cost_matches_genai_prices(model: str, provider: str, inp: int, out: int, read: int, write_: int,
                                   write_1h: int) -> None:
    expected_usage = {"input_tokens": inp + read + write_, "output_tokens": out}
    if read:
        expected_usage["cache_read_tokens"] = read
    if write_:
        expected_usage["cache_write_tokens"] = write_
    if write_1h:
        expected_usage["cache_write_1h_tokens"] = write_1h
        expected_usage["cache_write_5m_tokens"] = write_ - write_1h
    expected = calc_price(Usage(**expected_usage), model, provider_id=provider).total_price
    got = cost_usd(provider, model, costs.Tokens(inp, out, read, write_, write_1h))
    assert got is not None and cents(got) == cents(expected)
    assert got == expected


def test_cache_tokens_change_the_price() -> None:
    base = cost_usd(ANTHROPIC, "claude-sonnet-4-5", costs.Tokens(1000, 100))
    read = cost_usd(ANTHROPIC, "claude-sonnet-4-5", costs.Tokens(1000, 100, cache_read=100_000))
    written = cost_usd(ANTHROPIC, "claude-sonnet-4-5", costs.Tokens(1000, 100, cache_write=100_000))
    assert base is not None and read is not None and written is not None
    assert cents(read - base) == Decimal("0.03")  # $0.30 per million cache reads
    assert cents(written - base) == Decimal("0.38")  # $3.75 per million cache writes (5 minutes)


def test_unknown_model_or_provider_costs_none() -> None:
    assert cost_usd(ANTHROPIC, "claude-imaginary-9", costs.Tokens(10, 10)) is None
    assert cost_usd("no-such-provider", "gpt-4o", costs.Tokens(10, 10)) is None
    assert cost_usd(ANTHROPIC, None, costs.Tokens(10, 10)) is None
    assert cost_usd(ANTHROPIC, None, costs.Tokens()) == 0
    partial = costs.total([Decimal(1), None, Decimal("0.5")])
    assert partial.value is None  # a partial sum never reads as the whole
    assert (partial.priced, partial.unpriced) == (Decimal("1.5"), 1)
    assert costs.usd(partial) == "$1.50 + 1 request not priced"
    assert costs.usd(costs.total([None, None])) == "— (2 requests not priced)"
    assert costs.usd(costs.total([Decimal(2)])) == "$2.00" and costs.total([Decimal(2)]).value == Decimal(2)
    assert costs.usd(None) == "—"


def test_routed_exchange_is_priced_at_its_provider() -> None:
    route = {"provider": "openai", "model": "gpt-4o"}
    assert costs.provider_and_model("claude-sonnet-4-5", route) == ("openai", "gpt-4o")
    assert costs.provider_and_model("claude-sonnet-4-5", None) == ("anthropic", "claude-sonnet-4-5")


def test_session_cost_is_the_sum_of_its_requests(engine: Engine, client: TestClient) -> None:
    clock = [datetime(2026, 3, 1, tzinfo=UTC).timestamp()]
    conv = Conversation("sess-cost", clock, model="claude-sonnet-4-5")
    unknown = Conversation("sess-unknown", clock, model="claude-imaginary-9")
    write(engine, [conv.turn([user("a")], [text("b")]), conv.turn([user("c")], [text("d")]),
                   unknown.turn([user("a")], [text("b")])])
    # the mock's usage: 2,095 input, 42 output, 13,000 cache read, 1,536 cache write (5 minutes)
    one = calc_price(Usage(input_tokens=2095 + 13000 + 1536, output_tokens=42, cache_read_tokens=13000,
                           cache_write_tokens=1536), "claude-sonnet-4-5", provider_id="anthropic").total_price
    sessions = {s["id"]: s for s in client.get("/api/sessions").json()["sessions"]}
    assert Decimal(sessions["sess-cost"]["cost_usd"]) == 2 * one
    assert sessions["sess-unknown"]["cost_usd"] is None


def test_a_session_with_an_unpriced_routed_request_shows_the_known_part(engine: Engine, client: TestClient) -> None:
    from tests.support.builders import captured, sse_answer

    headers = [("x-claude-code-session-id", "mixed-cost")]
    body = {"model": "claude-opus-4-1", "max_tokens": 10, "stream": True, "messages": [user("hi")]}
    priced = captured(body, headers, 1_790_000_000.0, answer=sse_answer([text("hello")], "claude-opus-4-1"))
    routed = captured({**body, "messages": [user("review this")]}, [*headers, ("x-claude-code-agent-id", "a1")],
                      1_790_000_001.0, answer=sse_answer([text("fine")], "claude-opus-4-1"),
                      route={"rule": "agent_call", "agent": "code-reviewer", "provider": "local", "kind": "ollama",
                             "model": "no-such-model:1b"})
    write(engine, [priced, routed])
    summary = client.get("/api/sessions/mixed-cost").json()["session"]
    assert summary["cost_usd"] is None  # the whole is unknown
    assert summary["unpriced_requests"] == 1 and Decimal(summary["cost_usd_priced"]) > 0
    page = client.get("/sessions/mixed-cost").text
    assert "+ 1 request not priced" in page
    # the session list tells the same: the known part and how many requests it leaves out
    (listed,) = client.get("/api/sessions").json()["sessions"]
    cost_keys = ("cost_usd", "cost_usd_priced", "unpriced_requests")
    assert {k: listed.get(k, "absent") for k in cost_keys} == {k: summary[k] for k in cost_keys}
