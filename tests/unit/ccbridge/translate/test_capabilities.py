"""The model capability table and user overrides."""

from __future__ import annotations

import pytest

from ccbridge.errors import ConfigError
from ccbridge.translate.capabilities import capabilities_for, parse_override


@pytest.mark.parametrize(
    ("model", "token_param", "temperature", "efforts", "parallel", "with_tools"),
    [
        ("gpt-5", "max_completion_tokens", False, ("minimal", "low", "medium", "high"), True, True),
        ("gpt-5-mini", "max_completion_tokens", False, ("minimal", "low", "medium", "high"), True, True),
        ("gpt-5.1", "max_completion_tokens", True, ("none", "low", "medium", "high"), True, True),
        ("gpt-5.4", "max_completion_tokens", True, ("none", "low", "medium", "high", "xhigh"), True, False),
        ("gpt-5.6-luna", "max_completion_tokens", True, ("none", "low", "medium", "high", "xhigh"), True, False),
        ("o3", "max_completion_tokens", False, ("low", "medium", "high"), False, True),
        ("o4-mini", "max_completion_tokens", False, ("low", "medium", "high"), False, True),
        ("gpt-4.1-mini", "max_completion_tokens", True, (), True, True),
        ("gpt-4o", "max_completion_tokens", True, (), True, True),
    ],
)
def test_openai_table(
    model: str, token_param: str, temperature: bool, efforts: tuple, parallel: bool, with_tools: bool
) -> None:
    caps = capabilities_for("openai", "openai", model)
    assert caps.token_param == token_param
    assert caps.supports_temperature is temperature
    assert caps.reasoning_efforts == efforts
    assert caps.supports_parallel_tool_calls is parallel
    assert caps.reasoning_with_tools is with_tools
    assert caps.supports_cache_key and caps.supports_safety_identifier


def test_o_series_rejects_stop() -> None:
    assert not capabilities_for("openai", "openai", "o3-mini").supports_stop
    assert capabilities_for("openai", "openai", "gpt-4.1").supports_stop


def test_gpt5_output_cap_is_not_the_old_16k() -> None:
    assert capabilities_for("openai", "openai", "gpt-5-mini").max_output >= 100000


def test_model_name_case_does_not_matter() -> None:
    assert capabilities_for("openai", "openai", "GPT-5-mini") == capabilities_for("openai", "openai", "gpt-5-mini")


def test_local_servers() -> None:
    ollama = capabilities_for("ollama", "ollama", "qwen3:8b")
    assert ollama.token_param == "max_tokens"
    assert not ollama.supports_parallel_tool_calls and not ollama.system_in_middle
    assert not ollama.supports_cache_key and not ollama.reasoning_efforts
    assert capabilities_for("vllm", "vllm", "Qwen/Qwen3-8B").supports_top_k
    generic = capabilities_for("x", "openai-compatible", "whatever")
    assert generic.token_param == "max_tokens" and not generic.supports_top_k
    assert capabilities_for("x", "no-such-kind", "m") == generic


def test_overrides_apply_in_order_by_model_or_provider_glob() -> None:
    overrides = {
        "qwen3:*": parse_override("capabilities.qwen3:*", {"max_output": 8192, "reasoning_efforts": ["low", "high"]}),
        "ollama/qwen3:8b": {"vision": True},
        "gpt-*": {"max_output": 5},
    }
    caps = capabilities_for("ollama", "ollama", "qwen3:8b", overrides)
    assert (caps.max_output, caps.reasoning_efforts, caps.vision) == (8192, ("low", "high"), True)
    other = capabilities_for("lab", "ollama", "qwen3:8b", overrides)
    assert other.vision is False


def test_override_can_add_a_brand_new_model() -> None:
    caps = capabilities_for("openai", "openai", "gpt-7-preview", {"gpt-7*": {"reasoning_efforts": ("none", "high")}})
    assert caps.reasoning_efforts == ("none", "high") and caps.token_param == "max_completion_tokens"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"max_output": "big"}, "capabilities.m.max_output"),
        ({"max_output": 0}, "capabilities.m.max_output"),
        ({"vision": "yes"}, "capabilities.m.vision"),
        ({"token_param": "max_output_tokens"}, "capabilities.m.token_param"),
        ({"reasoning_efforts": ["extreme"]}, "capabilities.m.reasoning_efforts"),
        ({"disabled_effort": "off"}, "capabilities.m.disabled_effort"),
        ({"color": "blue"}, "capabilities.m.color"),
    ],
)
def test_bad_overrides_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_override("capabilities.m", raw)
    assert caught.value.key == key


def test_override_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"capabilities\.m: must be a mapping"):
        parse_override("capabilities.m", ["vision"])


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-2025-08-07", "gpt-5.1", "gpt-5.2",
                                   "gpt-5.4-mini", "gpt-5.6"])
def test_gpt5_family_rejects_stop(model: str) -> None:
    assert not capabilities_for("openai", "openai", model).supports_stop


def test_cache_control_only_for_openrouter_in_front_of_claude() -> None:
    assert capabilities_for("openrouter", "openrouter", "anthropic/claude-sonnet-4.5").cache_control
    assert not capabilities_for("openrouter", "openrouter", "openai/gpt-4o").cache_control
    assert not capabilities_for("openai", "openai", "gpt-5-mini").cache_control
    assert not capabilities_for("ollama", "ollama", "qwen3:8b").cache_control
