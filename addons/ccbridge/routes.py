"""Where routed requests go: the routes that config.yaml and SUBAGENT_MAPPINGS resolve to, and their lookups.

`Settings` (settings.py) checks the shape of config.yaml; `resolve_routing` ties its routing sections together:
route targets to providers, providers to their keys, and says which configured provider nothing uses.
A route target is written `model` (on the default provider) or `<provider>/<model>`, where `<provider>` must
be a provider name; model names may themselves contain `/` and `:` (`ollama/qwen3:8b`, `openrouter/openai/gpt-4o`).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ccbridge.errors import ConfigError
from ccbridge.translate.capabilities import ModelCapabilities, capabilities_for

if TYPE_CHECKING:
    from ccbridge.settings import ProviderSettings, RouteSettings, Settings

ENV_MAPPINGS = "SUBAGENT_MAPPINGS"
BUILTIN_OPENAI = "openai"  # usable without a `providers:` entry (settings.py says how)
DEFAULT_AGENT_DIRS = ("~/.claude/agents", "./.claude/agents")


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    kind: str
    api_key: str = field(default="", repr=False)
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    api: str = "chat"  # "responses": called through OpenAI's Responses API instead of Chat Completions


@dataclass(frozen=True)
class Route:
    provider: str
    model: str
    fallback: str | None = None  # "anthropic": forward the original request there if the provider fails


@dataclass(frozen=True)
class RoutingSettings:
    enabled: bool = False
    providers: Mapping[str, Provider] = field(default_factory=dict)
    default_provider: str = BUILTIN_OPENAI
    agents: Mapping[str, Route] = field(default_factory=dict)
    models: Mapping[str, Route] = field(default_factory=dict)
    capabilities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ping_interval: float = 10.0
    agent_dirs: tuple[Path, ...] = tuple(Path(os.path.expanduser(d)) for d in DEFAULT_AGENT_DIRS)
    timeout: float = 600.0
    listen_port: int = 0  # the routing server's loopback port; 0: any free one
    shadows: Mapping[str, Route] = field(default_factory=dict)  # agents copied to another model, answered by Claude
    shadow_concurrency: int = 4  # shadow requests in flight at once; more are dropped (and counted)

    def route_for_agent(self, name: str | None) -> Route | None:
        """The route of a subagent type; exact name first, then ignoring case."""
        return _by_agent(self.agents, name) if self.enabled else None

    def shadow_for_agent(self, name: str | None) -> Route | None:
        """The shadow route of a subagent type (one whose provider has a key); exact name first, then ignoring case."""
        return _by_agent(self.shadows, name) if self.enabled else None

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


@dataclass(frozen=True)
class _Target:
    """A route as written: `provider` is None when it names none (the default provider's)."""

    key: str  # where it was written, for messages: `subagents.mappings.code-reviewer`
    provider: str | None
    model: str
    fallback: str | None = None

    def route(self, default: str) -> Route:
        return Route(self.provider or default, self.model, self.fallback)


def _by_agent(routes: Mapping[str, Route], name: str | None) -> Route | None:
    if not name:
        return None
    if name in routes:
        return routes[name]
    return next((route for key, route in routes.items() if key.casefold() == name.casefold()), None)


def resolve_routing(settings: Settings, env: Mapping[str, str], builtin_openai: ProviderSettings, *,
                    check_keys: bool = True) -> tuple[RoutingSettings, list[str]]:
    """The routes of validated settings and the environment, and warnings about what nothing uses.

    `builtin_openai` is the provider `openai` when a route uses it and `providers:` does not define it.
    """
    subagents, configured = settings.subagents, settings.providers
    names = set(configured) | {BUILTIN_OPENAI}
    mapped = _targets("subagents.mappings", subagents.mappings, names)
    from_env = _env_targets(env.get(ENV_MAPPINGS, ""), names)
    by_model = _targets("models", settings.models, names)
    shadowed = _targets("subagents.shadow", subagents.shadow, names)
    enabled = subagents.enable if subagents.enable is not None else bool(mapped or by_model or shadowed)
    if from_env:
        # Setting the variable is a deliberate choice for this run: it replaces the configured mappings
        # and switches routing on even where the config file says `enable: false`.
        mapped, enabled = from_env, True
    targets = [*mapped.values(), *by_model.values()]
    default = _default_provider(subagents.default_provider, set(configured),
                                _first_without_provider([*targets, *shadowed.values()]))
    agents = {name: t.route(default) for name, t in mapped.items()}
    models = {name: t.route(default) for name, t in by_model.items()}
    shadows = {name: t.route(default) for name, t in shadowed.items()}

    needed_by: dict[str, str] = {}  # provider name -> the first route that uses it
    for target in targets:
        needed_by.setdefault(target.provider or default, target.key)
    shadow_providers = {route.provider for route in shadows.values()}
    sections = dict(configured)
    if BUILTIN_OPENAI in {*needed_by, *shadow_providers} and BUILTIN_OPENAI not in sections:
        sections[BUILTIN_OPENAI] = builtin_openai
    providers = {name: _provider(name, section, env, needed_by.get(name) if enabled and check_keys else None)
                 for name, section in sections.items()}
    warnings = [f"providers.{name}: no route uses this provider, so its key is not checked"
                for name in sorted(configured) if enabled and name not in {*needed_by, *shadow_providers}]
    shadows, unsent = _sendable_shadows(shadows, mapped, providers)
    if enabled:
        warnings += unsent
    options = settings.routing_options
    routing = RoutingSettings(
        enabled=enabled, providers=providers, default_provider=default, agents=agents, models=models,
        capabilities=dict(settings.capabilities), ping_interval=options.ping_interval,
        agent_dirs=options.agent_dirs, timeout=options.timeout, listen_port=options.listen_port,
        shadows=shadows, shadow_concurrency=options.shadow_concurrency,
    )
    return routing, warnings


def _sendable_shadows(shadows: dict[str, Route], mapped: Mapping[str, _Target],
                      providers: Mapping[str, Provider]) -> tuple[dict[str, Route], list[str]]:
    """The shadow routes that can be sent, and a warning for each that cannot.

    A shadow is a comparison, not traffic: its provider's missing key must not stop the proxy, so such a
    shadow is left out (never sent) with a warning. An agent that is routed is not shadowed.
    """
    sendable: dict[str, Route] = {}
    warnings: list[str] = []
    for name, route in shadows.items():
        provider = providers[route.provider]
        if name in mapped:
            warnings.append(f"subagents.shadow.{name}: the agent is routed (subagents.mappings), so it is not shadowed")
        elif not provider.api_key:
            needs = (f"environment variable {provider.api_key_env} is not set" if provider.api_key_env
                     else "it has no api_key or api_key_env")
            warnings.append(f"subagents.shadow.{name}: provider {route.provider} has no key ({needs}), so this "
                            "shadow is never sent")
        else:
            sendable[name] = route
    return sendable, warnings


def _default_provider(given: str | None, configured: set[str], needed_by: str | None) -> str:
    """The provider of routes that name none: the one given, else the only one configured, else `openai`.

    Checked only when a route needs it (`needed_by` names the first such route).
    """
    known = configured | {BUILTIN_OPENAI}
    if given is not None:
        if needed_by is not None and given not in known:
            raise ConfigError("subagents.default_provider", _unknown_provider(given, known))
        return given
    if len(configured) == 1:
        return next(iter(configured))
    if needed_by is not None and configured and BUILTIN_OPENAI not in configured:
        raise ConfigError("subagents.default_provider",
                          f"needed by {needed_by}, which names no provider; give one of {', '.join(sorted(known))}")
    return BUILTIN_OPENAI


def parse_env_mappings(value: str, providers: set[str], default_provider: str) -> dict[str, Route]:
    """`agent:model` or `agent:provider/model`, comma-separated; the agent name ends at the first ':'.

    When set, these replace `subagents.mappings` and turn routing on.
    """
    return {agent: target.route(default_provider) for agent, target in _env_targets(value, providers).items()}


def guess_kind(base_url: str) -> str:
    """The provider kind a base URL suggests, for providers that do not say."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if host == "api.openai.com":
        return "openai"
    if host.endswith("openrouter.ai"):
        return "openrouter"
    if parts.port == 11434 or "ollama" in host:
        return "ollama"
    return "openai-compatible"


# --- route targets ------------------------------------------------------------------------------------


def _targets(key: str, entries: Mapping[str, str | RouteSettings], providers: set[str]) -> dict[str, _Target]:
    return {name: _target(f"{key}.{name}", entry, providers) for name, entry in entries.items()}


def _target(key: str, entry: str | RouteSettings, providers: set[str]) -> _Target:
    if isinstance(entry, str):
        return _target_text(key, entry, providers)
    if entry.provider is not None and entry.provider not in providers:
        raise ConfigError(f"{key}.provider", _unknown_provider(entry.provider, providers))
    return _Target(key, entry.provider, entry.model, entry.fallback)


def _target_text(key: str, text: str, providers: set[str]) -> _Target:
    head, slash, tail = text.partition("/")
    if slash and head in providers:
        if not tail:
            raise ConfigError(key, f"no model after '{head}/'")
        return _Target(key, head, tail)
    if not text:
        raise ConfigError(key, "empty model name")
    return _Target(key, None, text)


def _env_targets(value: str, providers: set[str]) -> dict[str, _Target]:
    targets: dict[str, _Target] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        agent, _, target = entry.partition(":")
        if not agent.strip() or not target.strip():
            raise ConfigError(ENV_MAPPINGS, f"bad entry {entry!r}: write agent:model or agent:provider/model")
        targets[agent.strip()] = _target_text(f"{ENV_MAPPINGS} entry {entry!r}", target.strip(), providers)
    return targets


def _first_without_provider(targets: list[_Target]) -> str | None:
    return next((t.key for t in targets if t.provider is None), None)


# --- providers ----------------------------------------------------------------------------------------


def _provider(name: str, section: ProviderSettings, env: Mapping[str, str], needed_by: str | None) -> Provider:
    """`needed_by`: the route that uses the provider when routing is on (its key must then be there)."""
    key = f"providers.{name}"
    api_key = section.api_key or ""
    if section.api_key_env is not None:
        api_key = env.get(section.api_key_env, "")
        if needed_by and not api_key:
            raise ConfigError(f"{key}.api_key_env",
                              f"environment variable {section.api_key_env} is not set (needed by {needed_by})")
    elif section.api_key is None and needed_by:
        raise ConfigError(key, "needs api_key (local servers accept any word, e.g. 'ollama') or api_key_env "
                               f"(needed by {needed_by})")
    return Provider(
        name=name,
        base_url=section.base_url.rstrip("/"),
        kind=section.kind or guess_kind(section.base_url),
        api_key=api_key,
        api_key_env=section.api_key_env,
        headers=dict(section.headers),
        api=section.api,
    )


def _unknown_provider(name: str, known: set[str]) -> str:
    return f"unknown provider {name!r}; known: {', '.join(sorted(known))}"
