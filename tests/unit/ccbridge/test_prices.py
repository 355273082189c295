"""Prices: config.yaml's `prices:` wins over genai-prices, genai-prices is asked by the provider's kind, and a
model priced nowhere has no price (None), never 0."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from genai_prices import Usage, calc_price

from ccbridge.prices import Tokens, cost_usd, price_key
from ccbridge.settings import parse_settings

USED = Tokens(input=3_000, output=1_500, cache_read=20_000, cache_write=1_000)


def configured(table: dict[str, dict[str, float]]):  # type: ignore[no-untyped-def]
    return parse_settings({"prices": table}, env={}).prices


def test_a_configured_price_is_per_million_tokens_and_cache_writes_cost_the_input_rate() -> None:
    prices = configured({"openrouter/openai/gpt-5-mini": {"input": 0.25, "output": 2, "cache_read": 0.025}})
    expected = (Decimal("0.25") * (3_000 + 1_000) + Decimal(2) * 1_500 + Decimal("0.025") * 20_000) / 1_000_000
    assert cost_usd("openrouter", "openai/gpt-5-mini", USED, prices=prices, kind="openrouter") == expected


def test_cache_reads_cost_the_input_rate_unless_priced_apart() -> None:
    prices = configured({"vllm/llama-3": {"input": 1, "output": 3}})
    expected = (Decimal(1) * (3_000 + 1_000 + 20_000) + Decimal(3) * 1_500) / 1_000_000
    assert cost_usd("vllm", "llama-3", USED, prices=prices) == expected


def test_a_local_model_priced_at_zero_costs_zero_not_unknown() -> None:
    prices = configured({"ollama/qwen3:8b": {"input": 0, "output": 0}})
    assert cost_usd("ollama", "qwen3:8b", USED, prices=prices, kind="ollama") == Decimal(0)
    assert cost_usd("ollama", "qwen3:8b", USED, kind="ollama") is None  # without the entry: not priced


def test_a_known_model_is_priced_by_genai_prices_asked_by_kind() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    expected = calc_price(Usage(input_tokens=3_000 + 20_000 + 1_000, output_tokens=1_500, cache_read_tokens=20_000,
                                cache_write_tokens=1_000), "gpt-5-mini", provider_id="openai",
                          genai_request_timestamp=datetime(2026, 3, 1)).total_price
    # the provider's name is the user's own word; its kind is what genai-prices knows
    assert cost_usd("work-openai", "gpt-5-mini", USED, kind="openai", at=when) == expected
    claude = calc_price(Usage(input_tokens=24_000, output_tokens=1_500, cache_read_tokens=20_000,
                              cache_write_tokens=1_000), "claude-sonnet-4-5", provider_id="anthropic").total_price
    assert cost_usd("anthropic", "claude-sonnet-4-5", USED) == claude


def test_configured_prices_override_genai_prices() -> None:
    prices = configured({"anthropic/claude-sonnet-4-5": {"input": 1, "output": 1, "cache_read": 1}})
    assert cost_usd("anthropic", "claude-sonnet-4-5", USED, prices=prices) == Decimal(25_500) / 1_000_000
    assert cost_usd("anthropic", "claude-haiku-4-5", USED, prices=prices) is not None  # other models: genai-prices


def test_unknown_models_and_providers_have_no_price() -> None:
    assert cost_usd("anthropic", "claude-imaginary-9", USED) is None
    assert cost_usd("mystery", "gpt-5-mini", USED) is None
    assert cost_usd("anthropic", None, USED) is None
    assert cost_usd("anthropic", None, Tokens()) == 0  # nothing used costs nothing, whatever the model


def test_tokens_of_an_anthropic_usage_object() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3,
             "cache_creation": {"ephemeral_1h_input_tokens": 2}}
    assert Tokens.of_usage(usage) == Tokens(10, 5, 7, 3, 2)
    assert Tokens.of_usage(None) == Tokens()
    assert price_key("openrouter", "openai/gpt-5-mini") == "openrouter/openai/gpt-5-mini"
