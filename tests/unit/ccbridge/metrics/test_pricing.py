"""Answers are priced on the pricing thread, by the route's provider when one answered."""

from __future__ import annotations

from ccbridge.metrics.pricing import Pricer, priced
from ccbridge.prices import Tokens, cost_usd
from ccbridge.settings import PriceSettings

TOKENS = Tokens(input=1_000, output=500, cache_read=2_000, cache_write=100)


def test_prices_reach_the_record_in_order_and_unknown_models_have_none():
    recorded: list[tuple[tuple[str, ...], float | None]] = []
    prices = {"ollama/qwen3:8b": PriceSettings(input=1.0, output=2.0)}
    pricer = Pricer(lambda labels, usd: recorded.append((labels, usd)), lambda: prices)
    try:
        pricer.submit(priced(("a",), None, "claude-sonnet-4-5", TOKENS))
        pricer.submit(priced(("b",), {"provider": "ollama", "kind": "ollama", "model": "qwen3:8b"}, "claude-x",
                             TOKENS))
        pricer.submit(priced(("c",), None, "no-such-model-anywhere", TOKENS))
        assert pricer.wait()
    finally:
        pricer.close()
    assert recorded[0] == (("a",), float(cost_usd("anthropic", "claude-sonnet-4-5", TOKENS) or -1))
    assert recorded[1] == (("b",), (1.0 * (1_000 + 100) + 2.0 * 500 + 1.0 * 2_000) / 1_000_000)
    assert recorded[2] == (("c",), None)


def test_a_full_queue_counts_the_answer_as_unpriced_instead_of_waiting():
    recorded: list[float | None] = []
    pricer = Pricer(lambda labels, usd: recorded.append(usd), lambda: {}, limit=1)
    pricer.close()  # the thread is gone: nothing drains the queue
    pricer.submit(priced(("a",), None, "m", TOKENS))
    pricer.submit(priced(("b",), None, "m", TOKENS))
    assert recorded == [None]  # the first waits in the queue, the second finds it full
