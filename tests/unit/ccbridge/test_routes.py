"""The routing sections of config.yaml and SUBAGENT_MAPPINGS, resolved into `Settings.routing`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ccbridge.errors import ConfigError
from ccbridge.routes import Route, RoutingSettings, parse_env_mappings
from ccbridge.settings import ROUTING_KEYS, parse_settings

EXAMPLE = yaml.safe_load("""
providers:
  openai:  {base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY}
  ollama:  {base_url: http://127.0.0.1:11434/v1, api_key: ollama}
subagents:
  enable: true
  default_provider: openai
  mappings:
    code-reviewer: gpt-5-mini
    doc-writer: {provider: ollama, model: "qwen3:8b", fallback: anthropic}
models:
  claude-haiku-4-5: {provider: ollama, model: "qwen3:8b"}
capabilities:
  "qwen3:*": {max_output: 8192, reasoning_efforts: []}
routing:
  ping_interval: 10
  agent_dirs: ["~/.claude/agents", "./.claude/agents"]
  timeout: 600
storage: {url: "sqlite:///x.db"}
""")
ENV = {"OPENAI_API_KEY": "sk-test"}


def parse(raw: dict[str, Any], env: dict[str, str] | None = None) -> RoutingSettings:
    return parse_settings(raw, ENV if env is None else env).routing


def fails(raw: dict[str, Any], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(raw, env)
    return caught.value


def with_(path: str, value: Any) -> dict[str, Any]:
    """EXAMPLE with one nested value replaced (`a.b.c`)."""
    raw = yaml.safe_load(yaml.safe_dump(EXAMPLE))
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


def test_the_documented_example() -> None:
    settings = parse(EXAMPLE)
    assert settings.enabled and settings.default_provider == "openai"
    assert settings.agents == {
        "code-reviewer": Route("openai", "gpt-5-mini"),
        "doc-writer": Route("ollama", "qwen3:8b", fallback="anthropic"),
    }
    assert settings.models == {"claude-haiku-4-5": Route("ollama", "qwen3:8b")}
    openai, ollama = settings.providers["openai"], settings.providers["ollama"]
    assert (openai.kind, openai.api_key, openai.api_key_env) == ("openai", "sk-test", "OPENAI_API_KEY")
    assert (ollama.kind, ollama.api_key, ollama.base_url) == ("ollama", "ollama", "http://127.0.0.1:11434/v1")
    assert settings.ping_interval == 10.0 and settings.timeout == 600.0
    assert settings.agent_dirs == (Path("~/.claude/agents").expanduser(), Path(".claude/agents"))
    assert "sk-test" not in repr(openai)


def test_routing_keys_constant() -> None:
    assert set(ROUTING_KEYS) == {"providers", "subagents", "models", "capabilities", "routing"}


def test_lookups_and_capabilities() -> None:
    settings = parse(EXAMPLE)
    assert settings.route_for_agent("Code-Reviewer") == Route("openai", "gpt-5-mini")
    assert settings.route_for_agent("Explore") is None
    assert settings.route_for_model("claude-haiku-4-5") == Route("ollama", "qwen3:8b")
    caps = settings.capabilities_of(settings.agents["doc-writer"])
    assert caps.max_output == 8192 and caps.reasoning_efforts == () and not caps.system_in_middle


def test_model_routes_may_be_globs() -> None:
    settings = parse(
        {"models": {"claude-haiku-*": "ollama/qwen3:8b"}, "providers": {"ollama": EXAMPLE["providers"]["ollama"]}}
    )
    assert settings.route_for_model("claude-haiku-4-5-20251001") == Route("ollama", "qwen3:8b")


def test_nothing_configured_means_disabled() -> None:
    settings = parse({}, {})
    assert not settings.enabled and settings.route_for_agent("code-reviewer") is None


def test_disabled_section_does_not_demand_keys() -> None:
    settings = parse(with_("subagents.enable", False), {})
    assert not settings.enabled and settings.route_for_agent("code-reviewer") is None


def test_builtin_openai_provider_is_used_when_not_configured() -> None:
    settings = parse({"subagents": {"mappings": {"code-reviewer": "gpt-5-mini"}}})
    assert settings.enabled and settings.providers["openai"].base_url == "https://api.openai.com/v1"
    error = fails({"subagents": {"mappings": {"code-reviewer": "gpt-5-mini"}}}, {})
    assert error.key == "providers.openai.api_key_env" and "OPENAI_API_KEY" in error.problem


# --- SUBAGENT_MAPPINGS --------------------------------------------------------------------------------


def test_env_mappings_grammar() -> None:
    routes = parse_env_mappings(
        "code-reviewer:gpt-5-mini, doc-writer:ollama/qwen3:8b,,x:openrouter/openai/gpt-4o,y:meta/llama:3",
        {"openai", "ollama", "openrouter"},
        "openai",
    )
    assert routes == {
        "code-reviewer": Route("openai", "gpt-5-mini"),
        "doc-writer": Route("ollama", "qwen3:8b"),
        "x": Route("openrouter", "openai/gpt-4o"),
        "y": Route("openai", "meta/llama:3"),
    }


def test_env_mappings_replace_the_configured_ones() -> None:
    settings = parse(EXAMPLE, {**ENV, "SUBAGENT_MAPPINGS": "code-reviewer:ollama/qwen3:14b,Explore:gpt-5-nano"})
    assert settings.agents == {
        "code-reviewer": Route("ollama", "qwen3:14b"),
        "Explore": Route("openai", "gpt-5-nano"),
    }
    assert settings.models == {"claude-haiku-4-5": Route("ollama", "qwen3:8b")}


def test_env_mappings_switch_routing_on_over_enable_false() -> None:
    settings = parse(with_("subagents.enable", False), {**ENV, "SUBAGENT_MAPPINGS": "code-reviewer:gpt-5-mini"})
    assert settings.enabled and settings.route_for_agent("code-reviewer") == Route("openai", "gpt-5-mini")


def test_env_mappings_alone_enable_routing() -> None:
    assert parse({}, {**ENV, "SUBAGENT_MAPPINGS": "code-reviewer:gpt-5-mini"}).enabled


@pytest.mark.parametrize("entry", ["code-reviewer", ":gpt-5", "code-reviewer:", "a:ollama/"])
def test_bad_env_entries_name_the_variable_and_entry(entry: str) -> None:
    error = fails(
        {"providers": {"ollama": EXAMPLE["providers"]["ollama"]}}, {**ENV, "SUBAGENT_MAPPINGS": f"ok:gpt-5,{entry}"}
    )
    assert "SUBAGENT_MAPPINGS" in str(error) and entry in str(error)


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (
            "subagents.mappings.doc-writer",
            {"provider": "lmstudio", "model": "x"},
            "subagents.mappings.doc-writer.provider",
        ),
        (
            "subagents.mappings.doc-writer",
            {"model": "x", "fallback": "gemini"},
            "subagents.mappings.doc-writer.fallback",
        ),
        (
            "subagents.mappings.doc-writer",
            {"model": "x", "temperature": 0},
            "subagents.mappings.doc-writer.temperature",
        ),
        ("subagents.mappings.doc-writer", {"provider": "ollama"}, "subagents.mappings.doc-writer.model"),
        ("subagents.mappings.doc-writer", 5, "subagents.mappings.doc-writer"),
        ("subagents.default_provider", "azure", "subagents.default_provider"),
        ("subagents.enable", "yes", "subagents.enable"),
        ("subagents.extra", 1, "subagents.extra"),
        ("subagents.mappings", ["a"], "subagents.mappings"),
        ("providers.ollama.base_url", "127.0.0.1:11434", "providers.ollama.base_url"),
        ("providers.ollama.base_url", "ftp://host/v1", "providers.ollama.base_url"),
        ("providers.ollama.kind", "llamafile", "providers.ollama.kind"),
        ("providers.ollama.model", "x", "providers.ollama.model"),
        ("providers.ollama.headers", {"X-Title": 5}, "providers.ollama.headers"),
        ("providers.anthropic", {"base_url": "https://api.anthropic.com", "api_key": "k"}, "providers.anthropic"),
        ("routing.ping_interval", 0, "routing.ping_interval"),
        ("routing.timeout", "long", "routing.timeout"),
        ("routing.timeout", True, "routing.timeout"),
        ("routing.agent_dirs", "~/.claude/agents", "routing.agent_dirs"),
        ("routing.retries", 3, "routing.retries"),
        ("capabilities.qwen3:*", {"max_output": -1}, "capabilities.qwen3:*.max_output"),
        ("models.claude-haiku-4-5", {"provider": "nowhere", "model": "m"}, "models.claude-haiku-4-5.provider"),
        ("providers", ["openai"], "providers"),
    ],
)
def test_config_errors_name_the_key(path: str, value: Any, key: str) -> None:
    assert fails(with_(path, value)).key == key


def test_unknown_provider_error_lists_the_known_ones() -> None:
    error = fails(with_("subagents.mappings.doc-writer", {"provider": "lmstudio", "model": "x"}))
    assert "lmstudio" in error.problem and "ollama" in error.problem and "openai" in error.problem


def test_provider_without_any_key() -> None:
    error = fails(with_("providers.ollama", {"base_url": "http://127.0.0.1:11434/v1"}))
    assert error.key == "providers.ollama" and "api_key" in error.problem


def test_provider_with_both_kinds_of_key() -> None:
    error = fails(with_("providers.ollama", {"base_url": "http://h/v1", "api_key": "a", "api_key_env": "B"}))
    assert error.key == "providers.ollama"


def test_api_key_env_naming_an_unset_variable() -> None:
    error = fails(EXAMPLE, {})
    assert error.key == "providers.openai.api_key_env" and "OPENAI_API_KEY" in error.problem
    assert str(error).startswith("providers.openai.api_key_env: ")


def test_provider_kind_is_guessed_from_the_url_or_given() -> None:
    raw = {
        "providers": {
            "router": {"base_url": "https://openrouter.ai/api/v1", "api_key": "k"},
            "box": {"base_url": "http://gpu-box:8000/v1", "api_key": "k"},
            "lab": {"base_url": "http://gpu-box:8001/v1", "api_key": "k", "kind": "vllm"},
        }
    }
    providers = parse(raw).providers
    assert (providers["router"].kind, providers["box"].kind, providers["lab"].kind) == (
        "openrouter",
        "openai-compatible",
        "vllm",
    )


def test_provider_api_is_chat_unless_responses_is_asked_for() -> None:
    providers = parse(with_("providers.openai.api", "responses")).providers
    assert providers["openai"].api == "responses" and providers["ollama"].api == "chat"
    error = fails(with_("providers.ollama.api", "completions"))
    assert error.key == "providers.ollama.api" and "chat" in error.problem and "responses" in error.problem


# --- only what a route uses is checked ----------------------------------------------------------------------

OLLAMA_ONLY = {
    "providers": {"ollama": {"base_url": "http://127.0.0.1:11434/v1", "api_key": "ollama"}},
    "subagents": {"mappings": {"x": "qwen3:8b"}},
}


def test_a_config_with_only_ollama_loads_without_any_word_of_openai() -> None:
    loaded = parse_settings(OLLAMA_ONLY, {})
    settings = loaded.routing
    assert settings.enabled and settings.default_provider == "ollama"
    assert settings.agents == {"x": Route("ollama", "qwen3:8b")}
    assert set(settings.providers) == {"ollama"} and loaded.warnings == ()
    assert "openai" not in repr(settings)


def test_the_only_provider_is_the_default_also_for_models_and_the_environment() -> None:
    raw = {**OLLAMA_ONLY, "models": {"claude-haiku-*": "qwen3:4b"}}
    settings = parse(raw, {"SUBAGENT_MAPPINGS": "y:qwen3:14b"})
    assert settings.agents == {"y": Route("ollama", "qwen3:14b")}
    assert settings.models == {"claude-haiku-*": Route("ollama", "qwen3:4b")}


def test_a_provider_no_route_uses_is_not_asked_for_its_key_but_named_in_a_warning() -> None:
    raw = yaml.safe_load(yaml.safe_dump(OLLAMA_ONLY))
    raw["providers"]["openai"] = {"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"}
    raw["subagents"]["mappings"] = {"x": "ollama/qwen3:8b"}
    loaded = parse_settings(raw, {})
    assert loaded.routing.enabled and loaded.routing.providers["openai"].api_key == ""
    assert len(loaded.warnings) == 1 and loaded.warnings[0].startswith("providers.openai: no route uses")


def test_no_warning_while_routing_is_off() -> None:
    assert parse_settings(with_("subagents.enable", False), {}).warnings == ()


def test_a_default_provider_nothing_needs_is_not_checked() -> None:
    raw = {**OLLAMA_ONLY, "subagents": {"default_provider": "azure", "mappings": {"x": "ollama/qwen3:8b"}}}
    assert parse(raw, {}).agents == {"x": Route("ollama", "qwen3:8b")}


def test_several_providers_without_openai_need_a_default_provider_for_a_bare_model() -> None:
    raw = yaml.safe_load(yaml.safe_dump(OLLAMA_ONLY))
    raw["providers"]["vllm"] = {"base_url": "http://gpu-box:8000/v1", "api_key": "k"}
    error = fails(raw, {})
    assert error.key == "subagents.default_provider" and "subagents.mappings.x" in error.problem
    assert "ollama" in error.problem and "vllm" in error.problem
    raw["subagents"]["mappings"] = {"x": "vllm/qwen3:8b"}
    assert parse(raw, {}).agents == {"x": Route("vllm", "qwen3:8b")}


@pytest.mark.parametrize(("raw", "env", "route"), [
    (EXAMPLE, {}, "subagents.mappings.code-reviewer"),
    ({"models": {"claude-haiku-*": "gpt-5-nano"}}, {}, "models.claude-haiku-*"),
    ({}, {"SUBAGENT_MAPPINGS": "Explore:gpt-5-nano"}, "SUBAGENT_MAPPINGS entry 'Explore:gpt-5-nano'"),
])
def test_a_missing_key_names_the_route_that_needs_it(raw: dict[str, Any], env: dict[str, str], route: str) -> None:
    assert str(fails(raw, env)) == (
        f"providers.openai.api_key_env: environment variable OPENAI_API_KEY is not set (needed by {route})"
    )


def test_a_provider_without_a_key_names_the_route_that_needs_it() -> None:
    error = fails({**OLLAMA_ONLY, "providers": {"ollama": {"base_url": "http://127.0.0.1:11434/v1"}}}, {})
    assert error.key == "providers.ollama" and "needed by subagents.mappings.x" in error.problem


def test_the_viewer_and_the_cli_need_no_provider_keys() -> None:
    """They route nothing, so a key the proxy would need must not stop them (check_keys=False)."""
    fails(EXAMPLE, {})
    routing = parse_settings(EXAMPLE, env={}, check_keys=False).routing
    assert routing.route_for_agent("code-reviewer") == Route("openai", "gpt-5-mini")


# --- shadow routes ------------------------------------------------------------------------------------


def shadowing(shadow: dict[str, Any], **subagents: Any) -> dict[str, Any]:
    return {"providers": {"ollama": {"base_url": "http://127.0.0.1:11434/v1", "api_key": "ollama"},
                          "paid": {"base_url": "https://paid.example/v1", "api_key_env": "PAID_KEY"}},
            "subagents": {"shadow": shadow, **subagents}}


def test_shadow_routes_use_the_route_grammar_and_switch_routing_on() -> None:
    settings = parse(shadowing({"code-reviewer": "ollama/qwen3:8b", "doc-writer": {"provider": "paid",
                                                                                    "model": "gpt-5-mini"}}),
                     env={"PAID_KEY": "sk-paid"})
    assert settings.enabled
    assert settings.shadows == {"code-reviewer": Route("ollama", "qwen3:8b"), "doc-writer": Route("paid", "gpt-5-mini")}
    assert settings.shadow_for_agent("Code-Reviewer") == Route("ollama", "qwen3:8b")
    assert settings.route_for_agent("code-reviewer") is None  # stays on Claude
    assert settings.shadow_concurrency == 4


def test_a_shadow_whose_provider_key_is_missing_is_never_sent_and_named_in_a_warning() -> None:
    loaded = parse_settings(shadowing({"code-reviewer": "paid/gpt-5-mini", "doc-writer": "ollama/qwen3:8b"}), {})
    assert loaded.routing.shadows == {"doc-writer": Route("ollama", "qwen3:8b")}
    assert loaded.routing.shadow_for_agent("code-reviewer") is None
    [warning] = [w for w in loaded.warnings if "code-reviewer" in w]
    assert "subagents.shadow.code-reviewer" in warning and "PAID_KEY" in warning and "never sent" in warning


def test_a_shadow_on_the_builtin_openai_without_its_key_does_not_stop_start_up() -> None:
    loaded = parse_settings({"subagents": {"shadow": {"code-reviewer": "gpt-5-mini"}}}, {})
    assert loaded.routing.shadows == {}
    assert any("OPENAI_API_KEY" in w and "never sent" in w for w in loaded.warnings)


def test_a_routed_agent_is_not_shadowed() -> None:
    loaded = parse_settings(shadowing({"code-reviewer": "ollama/qwen3:8b"},
                                      mappings={"code-reviewer": "ollama/qwen3:8b"}), {})
    assert loaded.routing.route_for_agent("code-reviewer") == Route("ollama", "qwen3:8b")
    assert loaded.routing.shadow_for_agent("code-reviewer") is None
    assert any("subagents.shadow.code-reviewer" in w and "routed" in w for w in loaded.warnings)


def test_a_provider_only_a_shadow_uses_is_not_reported_as_unused() -> None:
    loaded = parse_settings(shadowing({"code-reviewer": "ollama/qwen3:8b"}), {})
    assert not [w for w in loaded.warnings if "providers.ollama" in w]


def test_shadows_are_off_with_routing_off() -> None:
    loaded = parse_settings(shadowing({"code-reviewer": "paid/gpt-5-mini"}, enable=False), {})
    assert loaded.routing.shadow_for_agent("code-reviewer") is None and not loaded.warnings


def test_shadow_concurrency_is_a_positive_whole_number() -> None:
    assert parse({**shadowing({}), "routing": {"shadow_concurrency": 2}}, env={}).shadow_concurrency == 2
    assert "routing.shadow_concurrency" in str(fails({"routing": {"shadow_concurrency": 0}}, env={}))


def test_a_shadow_naming_an_unknown_provider_is_a_config_error() -> None:
    assert "subagents.shadow.code-reviewer" in str(fails(shadowing({"code-reviewer": {"provider": "nope",
                                                                                       "model": "m"}})))
