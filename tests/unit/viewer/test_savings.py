"""The savings report: a session with routed and shadowed requests; its sums equal those worked out here by hand
from genai-prices and from the configured `prices:`, and the /usage page shows them (escaped)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from genai_prices import Usage, calc_price
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ccbridge.settings import parse_settings
from ccbridge.storage.models import AlternateAnswer, Exchange
from tests.support.builders import Conversation, captured, text, user, write
from viewer import savings
from viewer.app import create_app
from viewer.costs import Tokens, Total

DAY_1 = datetime(2026, 3, 1, 9, tzinfo=UTC)
DAY_2 = datetime(2026, 3, 2, 9, tzinfo=UTC)
CONFIG = {"prices": {"ollama/qwen3:8b": {"input": 0, "output": 0},
                     "openrouter/openai/gpt-5-mini": {"input": 0.25, "output": 2, "cache_read": 0.025}}}
# the mock's usage on every answer: 2,095 input (uncached), 13,000 cache read, 1,536 cache write; output below
INPUT, CACHE_READ, CACHE_WRITE = 2_095, 13_000, 1_536
EVIL = "<script>alert(1)</script>"


def genai(model: str, provider: str, output: int, day: datetime) -> Decimal:
    usage = Usage(input_tokens=INPUT + CACHE_READ + CACHE_WRITE, output_tokens=output, cache_read_tokens=CACHE_READ,
                  cache_write_tokens=CACHE_WRITE)
    return calc_price(usage, model, provider_id=provider,
                      genai_request_timestamp=day.replace(hour=0, tzinfo=None)).total_price


def route(agent: str, provider: str, kind: str, model: str, **more: Any) -> dict[str, Any]:
    return {"rule": "agent_call", "agent": agent, "provider": provider, "kind": kind, "model": model,
            "requested_model": "claude-sonnet-4-5", "fallback": None, "fell_back": False, **more}


@pytest.fixture
def recorded(engine: Engine) -> Engine:
    """Day 1: a main thread (neither routed nor shadowed), four routed agents (priced by genai-prices, by config at
    0, by config, and nowhere), one that fell back, a shadowed subagent; day 2: one more routed request."""
    clock = [DAY_1.timestamp()]
    main = Conversation("sess-save", clock)
    reviewer = Conversation("sess-save", clock, agent_id="a-review")
    writer = Conversation("sess-save", clock, agent_id="a-doc")
    tester = Conversation("sess-save", clock, agent_id="a-test")
    explorer = Conversation("sess-save", clock, agent_id="a-explore")
    shadowed = Conversation("sess-save", clock, agent_id="a-shadow")
    items = [
        main.turn([user("hello")], [text("hi")]),
        reviewer.turn([user("review")], [text("ok")], output_tokens=100,
                      route=route("code-reviewer", "openai", "openai", "gpt-5-mini")),
        reviewer.turn([user("again")], [text("ok")], output_tokens=300,
                      route=route("code-reviewer", "openai", "openai", "gpt-5-mini")),
        writer.turn([user("docs")], [text("ok")], output_tokens=500,
                    route=route("doc-writer", "ollama", "ollama", "qwen3:8b")),
        tester.turn([user("test")], [text("ok")], output_tokens=700,
                    route=route(EVIL, "openrouter", "openrouter", "openai/gpt-5-mini")),
        explorer.turn([user("look")], [text("ok")], output_tokens=50,
                      route=route("explorer", "local", "openai-compatible", "mystery:1b")),
        explorer.turn([user("look again")], [text("ok")],
                      route=route("explorer", "local", "openai-compatible", "mystery:1b", fell_back=True)),
        shadowed.turn([user("check")], [text("ok")], output_tokens=200),
        shadowed.turn([user("check more")], [text("ok")], output_tokens=400),
    ]
    clock[0] = DAY_2.timestamp()
    items.append(reviewer.turn([user("day two")], [text("ok")], output_tokens=1000,
                               route=route("code-reviewer", "openai", "openai", "gpt-5-mini")))
    write(engine, items)
    with Session(engine) as db:
        first, second = db.exec(select(Exchange.id).where(Exchange.agent_id == "a-shadow")
                                .order_by(Exchange.started_at)).all()
        assert first is not None and second is not None

        def answer(exchange_id: int, kind: str, cost: float | None, error: str | None = None) -> AlternateAnswer:
            return AlternateAnswer(exchange_id=exchange_id, kind=kind, provider="openai", model="gpt-5-mini",
                                   api="chat", created_at=DAY_1, input_tokens=16_000, output_tokens=150,
                                   cost_usd=cost, error=error)

        db.add_all([answer(first, "shadow", 0.0123), answer(second, "shadow", None),
                    answer(second, "shadow", None, error="provider timed out"),
                    answer(first, "replay", 5.0)])  # a replay is not a shadow: not in the report
        db.commit()
    return engine


@pytest.fixture
def priced_client(recorded: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(recorded, prices=parse_settings(CONFIG, env={}).prices)) as client:
        yield client


def per_million(rate: str, tokens: int) -> Decimal:
    return Decimal(rate) * tokens / 1_000_000


def test_savings_sums_equal_genai_prices_and_the_configured_prices(priced_client: TestClient) -> None:
    report = priced_client.get("/api/savings").json()
    assert "estimate" in report["method"] and "same token counts" in report["method"]
    rows = {(r["day"], r["agent"], r["kind"]): r for r in report["rows"]}
    assert set(rows) == {("2026-03-01", "code-reviewer", "routed"), ("2026-03-01", "doc-writer", "routed"),
                         ("2026-03-01", EVIL, "routed"), ("2026-03-01", "explorer", "routed"),
                         ("2026-03-01", "subagent", "shadow"), ("2026-03-02", "code-reviewer", "routed")}

    def claude(output: int, day: datetime = DAY_1) -> Decimal:
        return genai("claude-sonnet-4-5", "anthropic", output, day)

    reviewer = rows[("2026-03-01", "code-reviewer", "routed")]
    assert reviewer["requests"] == 2 and reviewer["claude"]["estimate"] is True
    assert Decimal(reviewer["claude"]["cost_usd"]) == claude(100) + claude(300)
    provider = genai("gpt-5-mini", "openai", 100, DAY_1) + genai("gpt-5-mini", "openai", 300, DAY_1)
    assert Decimal(reviewer["alternative"]["cost_usd"]) == provider
    assert (reviewer["alternative"]["provider"], reviewer["alternative"]["model"]) == ("openai", "gpt-5-mini")
    assert Decimal(reviewer["saved_usd"]) == claude(100) + claude(300) - provider

    local = rows[("2026-03-01", "doc-writer", "routed")]
    assert Decimal(local["alternative"]["cost_usd"]) == 0 and Decimal(local["saved_usd"]) == claude(500)

    tester = rows[("2026-03-01", EVIL, "routed")]
    configured = (per_million("0.25", INPUT + CACHE_WRITE) + per_million("2", 700)
                  + per_million("0.025", CACHE_READ))
    assert Decimal(tester["alternative"]["cost_usd"]) == configured

    unpriced = rows[("2026-03-01", "explorer", "routed")]
    assert unpriced["requests"] == 1  # the request that fell back to Anthropic is left out
    assert unpriced["alternative"]["cost_usd"] is None and unpriced["alternative"]["unpriced_requests"] == 1
    assert unpriced["saved_usd"] is None and Decimal(unpriced["claude"]["cost_usd"]) == claude(50)

    shadow = rows[("2026-03-01", "subagent", "shadow")]
    assert shadow["requests"] == 2 and shadow["claude"]["estimate"] is False
    assert Decimal(shadow["claude"]["cost_usd"]) == claude(200) + claude(400)  # what Claude really charged
    assert shadow["alternative"]["cost_usd"] is None  # one shadow has no price: the sum is not the whole
    assert Decimal(shadow["alternative"]["cost_usd_priced"]) == Decimal("0.0123")
    assert shadow["alternative"]["unpriced_requests"] == 1

    routed, shadows = report["totals"]["routed"], report["totals"]["shadow"]
    assert routed["requests"] == 6 and routed["fell_back_requests"] == 1
    claude_total = sum((claude(n) for n in (100, 300, 500, 700, 50)), claude(1000, DAY_2))
    assert Decimal(routed["claude"]["cost_usd"]) == claude_total
    provider_known = provider + configured + genai("gpt-5-mini", "openai", 1000, DAY_2)
    assert routed["alternative"]["cost_usd"] is None and routed["saved_usd"] is None
    assert Decimal(routed["alternative"]["cost_usd_priced"]) == provider_known
    assert routed["alternative"]["unpriced_requests"] == 1
    assert shadows["requests"] == 2 and shadows["failed_shadows"] == 1


def test_savings_of_a_period(priced_client: TestClient) -> None:
    report = priced_client.get("/api/savings", params={"since": "2026-03-02"}).json()
    (row,) = report["rows"]
    assert (row["day"], row["agent"], row["requests"]) == ("2026-03-02", "code-reviewer", 1)
    assert report["totals"]["shadow"]["requests"] == 0 and report["totals"]["routed"]["fell_back_requests"] == 0


def test_without_configured_prices_a_local_model_is_not_priced(recorded: Engine) -> None:
    with TestClient(create_app(recorded)) as client:
        rows = client.get("/api/savings").json()["rows"]
    local = next(r for r in rows if r["agent"] == "doc-writer")
    assert local["alternative"]["cost_usd"] is None and local["alternative"]["unpriced_requests"] == 1


def test_the_usage_page_shows_the_savings_section(priced_client: TestClient) -> None:
    response = priced_client.get("/usage")
    assert EVIL not in response.text  # the agent's name is escaped
    section = BeautifulSoup(response.text, "html.parser").find(id="savings")
    assert section is not None
    words = section.get_text(" ", strip=True)
    assert "Savings (estimate)" in words and "same token counts" in words
    rows = [[cell.get_text(" ", strip=True) for cell in tr.find_all(["td", "th"])]
            for tr in section.select("tbody tr")]
    tester = next(r for r in rows if r[1] == EVIL)  # shown as the text it is
    assert tester[2] == "routed" and tester[4] == "claude-sonnet-4-5" and tester[6] == "openrouter/openai/gpt-5-mini"
    assert tester[5].endswith("(estimate)")
    local = next(r for r in rows if r[1] == "doc-writer")
    assert local[7] == "$0.00"
    explorer = next(r for r in rows if r[1] == "explorer")
    assert explorer[7] == "— (1 request not priced)" and explorer[8] == "—"
    totals = [tr.get_text(" ", strip=True) for tr in section.select("tfoot tr")]
    assert "1 left out: fell back to Anthropic" in totals[0] and "1 left out: the shadow failed" in totals[1]


def test_the_usage_page_says_when_nothing_was_routed(client: TestClient) -> None:
    section = BeautifulSoup(client.get("/usage").text, "html.parser").find(id="savings")
    assert section is not None and "No routed or shadowed requests in this period." in section.get_text()


def test_summarize_keeps_unpriced_requests_apart() -> None:
    pairs = [savings.Pair("2026-03-01", "a", "routed", "claude-x", "p/m", Tokens(1, 1), Decimal(2), Decimal(1)),
             savings.Pair("2026-03-01", "a", "routed", "claude-x", "p/m", Tokens(1, 1), None, Decimal(1)),
             savings.Pair("2026-03-01", "b", "shadow", "claude-x", "p/m", Tokens(1, 1), Decimal(3), Decimal(1))]
    report = savings.summarize(pairs, {"routed": 4})
    first, second = report.rows
    assert (first.requests, first.claude, first.other_cost) == (2, Total(Decimal(2), 1), Total(Decimal(2)))
    assert first.saved is None and second.saved == Decimal(2)
    assert (report.routed.requests, report.routed.left_out, report.shadow.requests) == (2, 4, 1)


def test_a_count_tokens_request_is_not_a_routed_request(engine: Engine) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [user("hi")]}
    write(engine, [captured(body, [("x-claude-code-session-id", "s")], DAY_1.timestamp(),
                            path="/v1/messages/count_tokens", route=route("a", "openai", "openai", "gpt-5-mini"))])
    with Session(engine) as db:
        assert savings.report(db, {}).rows == []
