"""Validation of the routing sections of config.yaml (and SUBAGENT_MAPPINGS) into `RoutingSettings`.

Every problem raises `ConfigError` naming the key path and what is allowed. A route target is written
`model` (on the default provider) or `<provider>/<model>`, where `<provider>` must be a provider name;
model names may themselves contain `/` and `:` (`ollama/qwen3:8b`, `openrouter/openai/gpt-4o`).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ccbridge.errors import ConfigError
from ccbridge.translate.capabilities import PROVIDER_KINDS, ModelCapabilities, capabilities_for, parse_override

ROUTING_KEYS = ("providers", "subagents", "models", "capabilities", "routing")
ENV_MAPPINGS = "SUBAGENT_MAPPINGS"
FALLBACKS = ("anthropic",)
BUILTIN_OPENAI = {"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"}
DEFAULT_AGENT_DIRS = ("~/.claude/agents", "./.claude/agents")
_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    kind: str
    api_key: str = field(default="", repr=False)
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    provider: str
    model: str
    fallback: str | None = None  # "anthropic": forward the original request there if the provider fails


@dataclass(frozen=True)
class RoutingSettings:
    enabled: bool = False
    providers: Mapping[str, Provider] = field(default_factory=dict)
    default_provider: str = "openai"
    agents: Mapping[str, Route] = field(default_factory=dict)
    models: Mapping[str, Route] = field(default_factory=dict)
    capabilities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ping_interval: float = 10.0
    agent_dirs: tuple[Path, ...] = tuple(Path(os.path.expanduser(d)) for d in DEFAULT_AGENT_DIRS)
    timeout: float = 600.0

    def route_for_agent(self, name: str | None) -> Route | None:
        """The route of a subagent type; exact name first, then ignoring case."""
        if not self.enabled or not name:
            return None
        if name in self.agents:
            return self.agents[name]
        folded = {key.casefold(): route for key, route in self.agents.items()}
        return folded.get(name.casefold())

    def route_for_model(self, model: str | None) -> Route | None:
        """The route for a requested Claude model id; keys may be globs (`claude-haiku-*`)."""
        if not self.enabled or not model:
            return None
        if model in self.models:
            return self.models[model]
        return next((r for key, r in self.models.items() if fnmatch.fnmatchcase(model, key)), None)

    def capabilities_of(self, route: Route) -> ModelCapabilities:
        """What the route's model accepts: the built-in table plus the `capabilities:` overrides."""
        provider = self.providers[route.provider]
        return capabilities_for(provider.name, provider.kind, route.model, self.capabilities)


def parse_routing(raw: Mapping[str, Any], env: Mapping[str, str]) -> RoutingSettings:
    """Validate the ROUTING_KEYS sections of the whole config dict; other top-level keys are ignored."""
    providers_raw = _mapping(raw.get("providers"), "providers")
    subagents = _mapping(raw.get("subagents"), "subagents")
    _only(subagents, "subagents", ("enable", "default_provider", "mappings"))
    names = set(providers_raw) | {"openai"}
    default_provider = _string(subagents.get("default_provider", "openai"), "subagents.default_provider")
    if default_provider not in names:
        raise ConfigError("subagents.default_provider", _unknown_provider(default_provider, names))

    agents = _routes(
        _mapping(subagents.get("mappings"), "subagents.mappings"), "subagents.mappings", names, default_provider
    )
    from_env = parse_env_mappings(env.get(ENV_MAPPINGS, ""), names, default_provider)
    models = _routes(_mapping(raw.get("models"), "models"), "models", names, default_provider)
    enable = subagents.get("enable", bool(agents or models))
    if not isinstance(enable, bool):
        raise ConfigError("subagents.enable", "must be true or false")
    if from_env:
        # Setting the variable is a deliberate choice for this run: it replaces the configured mappings
        # and switches routing on even where the config file says `enable: false`.
        agents, enable = from_env, True

    used = {r.provider for r in (*agents.values(), *models.values())} | {default_provider}
    configured = dict(providers_raw)
    if "openai" not in configured and "openai" in used:
        configured["openai"] = BUILTIN_OPENAI
    providers = {name: _provider(name, value, env, need_key=enable) for name, value in configured.items()}

    capabilities = {
        key: parse_override(f"capabilities.{key}", value)
        for key, value in _mapping(raw.get("capabilities"), "capabilities").items()
    }
    return RoutingSettings(
        enabled=enable,
        providers=providers,
        default_provider=default_provider,
        agents=agents,
        models=models,
        capabilities=capabilities,
        **_routing_options(_mapping(raw.get("routing"), "routing")),
    )


def parse_env_mappings(value: str, providers: set[str], default_provider: str) -> dict[str, Route]:
    """`agent:model` or `agent:provider/model`, comma-separated; the agent name ends at the first ':'.

    When set, these replace `subagents.mappings` and turn routing on.
    """
    routes: dict[str, Route] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        agent, _, target = entry.partition(":")
        if not agent.strip() or not target.strip():
            raise ConfigError(ENV_MAPPINGS, f"bad entry {entry!r}: write agent:model or agent:provider/model")
        routes[agent.strip()] = _route_text(
            f"{ENV_MAPPINGS} entry {entry!r}", target.strip(), providers, default_provider
        )
    return routes


# --- sections -----------------------------------------------------------------------------------------


def _routes(raw: Mapping[str, Any], key: str, providers: set[str], default: str) -> dict[str, Route]:
    return {str(name): _route(f"{key}.{name}", value, providers, default) for name, value in raw.items()}


def _route(key: str, value: Any, providers: set[str], default: str) -> Route:
    if isinstance(value, str):
        return _route_text(key, value, providers, default)
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a model name, provider/model, or {provider, model, fallback}")
    _only(value, key, ("provider", "model", "fallback"))
    provider = _string(value.get("provider", default), f"{key}.provider")
    if provider not in providers:
        raise ConfigError(f"{key}.provider", _unknown_provider(provider, providers))
    model = _string(value.get("model"), f"{key}.model")
    fallback = value.get("fallback")
    if fallback is not None and fallback not in FALLBACKS:
        raise ConfigError(f"{key}.fallback", f"must be one of {', '.join(FALLBACKS)} (or left out)")
    return Route(provider=provider, model=model, fallback=fallback)


def _route_text(key: str, text: str, providers: set[str], default: str) -> Route:
    head, slash, tail = text.partition("/")
    if slash and head in providers:
        if not tail:
            raise ConfigError(key, f"no model after '{head}/'")
        return Route(provider=head, model=tail)
    if not text:
        raise ConfigError(key, "empty model name")
    return Route(provider=default, model=text)


def _provider(name: str, raw: Any, env: Mapping[str, str], *, need_key: bool) -> Provider:
    key = f"providers.{name}"
    if not _PROVIDER_NAME.match(name) or name == "anthropic":
        raise ConfigError(key, "provider names use letters, digits, '_', '-', '.'; 'anthropic' is reserved")
    value = _mapping(raw, key)
    _only(value, key, ("base_url", "api_key", "api_key_env", "kind", "headers"))
    base_url = _string(value.get("base_url"), f"{key}.base_url")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        example = "http://127.0.0.1:11434/v1"
        raise ConfigError(f"{key}.base_url", f"must be an http(s) URL such as {example}, got {base_url!r}")
    kind = value.get("kind", _guess_kind(base_url))
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"{key}.kind", f"must be one of {', '.join(PROVIDER_KINDS)}")
    headers = _mapping(value.get("headers"), f"{key}.headers")
    if not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"{key}.headers", "values must be strings")
    api_key, api_key_env = _api_key(key, value, env, need_key=need_key)
    return Provider(
        name=name,
        base_url=base_url.rstrip("/"),
        kind=kind,
        api_key=api_key,
        api_key_env=api_key_env,
        headers=dict(headers),
    )


def _api_key(key: str, value: Mapping[str, Any], env: Mapping[str, str], *, need_key: bool) -> tuple[str, str | None]:
    if "api_key" in value and "api_key_env" in value:
        raise ConfigError(key, "give api_key or api_key_env, not both")
    if "api_key" in value:
        return _string(value["api_key"], f"{key}.api_key"), None
    if "api_key_env" not in value:
        if need_key:
            raise ConfigError(key, "needs api_key (local servers accept any word, e.g. 'ollama') or api_key_env")
        return "", None
    variable = _string(value["api_key_env"], f"{key}.api_key_env")
    api_key = env.get(variable, "")
    if need_key and not api_key:
        raise ConfigError(f"{key}.api_key_env", f"environment variable {variable} is not set")
    return api_key, variable


def _guess_kind(base_url: str) -> str:
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if host == "api.openai.com":
        return "openai"
    if host.endswith("openrouter.ai"):
        return "openrouter"
    if parts.port == 11434 or "ollama" in host:
        return "ollama"
    return "openai-compatible"


def _routing_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    _only(raw, "routing", ("ping_interval", "agent_dirs", "timeout"))
    out: dict[str, Any] = {}
    for name in ("ping_interval", "timeout"):
        if name in raw:
            out[name] = _positive_number(raw[name], f"routing.{name}")
    if "agent_dirs" in raw:
        dirs = raw["agent_dirs"]
        if not isinstance(dirs, list) or not all(isinstance(d, str) and d for d in dirs):
            raise ConfigError("routing.agent_dirs", "must be a list of folder paths")
        out["agent_dirs"] = tuple(Path(os.path.expanduser(d)) for d in dirs)
    return out


# --- value checks -------------------------------------------------------------------------------------


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(key, f"must be a mapping with string keys, got {type(value).__name__}")
    return value


def _only(value: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    for name in value:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}", f"unknown key; allowed: {', '.join(allowed)}")


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a non-empty string")
    return value


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(key, "must be a positive number of seconds")
    return float(value)


def _unknown_provider(name: str, known: set[str]) -> str:
    return f"unknown provider {name!r}; known: {', '.join(sorted(known))}"
