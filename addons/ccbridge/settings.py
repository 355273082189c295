"""`config.yaml` as one typed model, `Settings`: find it, read it, validate it, and decide the storage URL.

Where it comes from, first found wins: `--set ccbridge_config=PATH`, `$CCBRIDGE_CONFIG`, `./config.yaml`.
No file at all means defaults. A wrong key or value raises `ConfigError` naming the key (dotted, as in
`providers.ollama.base_url` or `capture.hosts[0]`) and what is allowed. `config.yaml.example` shows every key.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import platformdirs
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Strict,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from .errors import ConfigError
from .routes import DEFAULT_AGENT_DIRS, RoutingSettings, resolve_routing
from .translate.capabilities import PROVIDER_KINDS, parse_override

ROUTING_KEYS = ("providers", "subagents", "models", "capabilities", "routing")  # the sections routes.py reads
STORAGE_URL_ENV = "CCBRIDGE_STORAGE_URL"
TOP_LEVEL = "(top level)"  # the key named when config.yaml is not a mapping at all

NonEmpty = Annotated[str, StringConstraints(pattern=r"\S")]
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _none_is_empty(value: Any) -> Any:
    # YAML reads a section whose keys are all commented out as null; that means "all defaults", as before
    return {} if value is None else value


OrEmpty = BeforeValidator(_none_is_empty)


class _Section(BaseModel):
    # strict: YAML already gives typed values, so `"10"` for a number or `yes` as a string is a mistake
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _commented_out(cls, data: Any) -> Any:
        return _none_is_empty(data)


class StorageSettings(_Section):
    url: str | None = Field(None, pattern="://", description=(
        "an SQLAlchemy URL such as sqlite:///path.db or postgresql+psycopg://..."))
    batch_size: int = Field(200, gt=0, description="a whole number greater than 0 (exchanges per commit)")
    batch_seconds: float = Field(0.25, gt=0, description="a positive number of seconds")
    journal_dir: Annotated[Path, Strict(False), AfterValidator(Path.expanduser)] | None = Field(None, description=(
        "a folder path (where captures wait until the database has them)"))


class CaptureSettings(_Section):
    hosts: Annotated[tuple[str, ...], AfterValidator(lambda hosts: tuple(h.lower() for h in hosts))] = Field(
        ("api.anthropic.com",), strict=False, description="a list of host names")
    max_body_mb: float = Field(64.0, gt=0, description="a positive number of megabytes")
    redact_body_secrets: bool = Field(False, description=(
        "true or false (replace key and token shapes inside bodies with fingerprints before storage)"))


class UpstreamSettings(_Section):
    read_timeout_s: float = Field(600.0, ge=0, description=(
        "a number of seconds, 0 or more (0: no timeout); extended thinking can pause for minutes"))


class ViewerSettings(_Section):
    host: str = Field("127.0.0.1", description="an address to bind, such as 127.0.0.1")
    port: int = Field(8083, ge=1, le=65535, description="1..65535 (a TCP port)")
    password: str | None = Field(None, description="a password (HTTP basic auth, any user name)")
    token: str | None = Field(None, description="a token (Authorization: Bearer <token>)")


class MetricsSettings(_Section):
    port: int | None = Field(None, ge=1, le=65535, description=(
        "1..65535 (the TCP port serving /metrics; left out: no metrics)"))
    host: str = Field("127.0.0.1", description="an address to bind, such as 127.0.0.1")


class ProviderSettings(_Section):
    base_url: NonEmpty = Field(description="an http(s) URL such as http://127.0.0.1:11434/v1")
    api_key: NonEmpty | None = Field(None, repr=False, description="the key itself (local servers take any word)")
    api_key_env: NonEmpty | None = Field(None, description="the name of the environment variable holding the key")
    kind: str | None = Field(None, description=f"one of {', '.join(PROVIDER_KINDS)} (default: from base_url)")
    headers: Annotated[dict[str, str], OrEmpty] = Field(default_factory=dict, description=(
        "a mapping of header names to strings"))
    api: Literal["chat", "responses"] = Field("chat", description=(
        "chat (Chat Completions) or responses (OpenAI's Responses API)"))

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("not an http(s) URL")
        return url

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str | None) -> str | None:
        if kind is not None and kind not in PROVIDER_KINDS:
            raise ValueError("unknown kind")
        return kind

    @model_validator(mode="after")
    def _one_key(self) -> ProviderSettings:
        if self.api_key is not None and self.api_key_env is not None:
            raise ConfigError("", "give api_key or api_key_env, not both")
        return self


class RouteSettings(_Section):
    provider: NonEmpty | None = Field(None, description="a provider name (default: subagents.default_provider)")
    model: NonEmpty = Field(description="the model name at that provider")
    fallback: Literal["anthropic"] | None = Field(None, description=(
        "anthropic (send the original request there if the provider fails) or left out"))


def _route_form(value: Any) -> str | None:
    return "text" if isinstance(value, str) else "table" if isinstance(value, Mapping) else None


# `gpt-5-mini`, `ollama/qwen3:8b` or {provider, model, fallback}; the text is read in routes.py
RouteEntry = Annotated[
    Annotated[NonEmpty, Tag("text")] | Annotated[RouteSettings, Tag("table")],
    Discriminator(_route_form, custom_error_type="route", custom_error_message="not a route"),
]
ROUTE_WORDS = "a model name, provider/model, or {provider, model, fallback}"


class SubagentSettings(_Section):
    enable: bool | None = Field(None, description="true or false (default: on when anything is mapped)")
    default_provider: NonEmpty | None = Field(None, description=(
        "a provider name, for mappings that name none (default: the only provider, else openai)"))
    mappings: Annotated[dict[str, RouteEntry], OrEmpty] = Field(default_factory=dict, description=(
        f"a mapping of agent names to routes: {ROUTE_WORDS}"))
    shadow: Annotated[dict[str, RouteEntry], OrEmpty] = Field(default_factory=dict, description=(
        f"a mapping of agent names (left on Claude) to the routes that get a copy of their requests: {ROUTE_WORDS}"))


class RoutingOptions(_Section):
    ping_interval: float = Field(10.0, gt=0, description="a positive number of seconds")
    agent_dirs: tuple[Annotated[Path, Strict(False), AfterValidator(Path.expanduser)], ...] = Field(
        tuple(Path(d).expanduser() for d in DEFAULT_AGENT_DIRS), strict=False, description="a list of folder paths")
    timeout: float = Field(600.0, gt=0, description="a positive number of seconds")
    listen_port: int = Field(0, ge=0, le=65535, description=(
        "0..65535 (the routing server's loopback port; 0: any free port)"))
    shadow_concurrency: int = Field(4, ge=1, description=(
        "a positive whole number (shadow requests in flight at once; more are dropped and counted)"))


class PriceSettings(_Section):
    input: float = Field(ge=0, description="USD per million input tokens (0 or more)")
    output: float = Field(ge=0, description="USD per million output tokens (0 or more)")
    cache_read: float | None = Field(None, ge=0, description=(
        "USD per million cache-read tokens (0 or more; default: the input price)"))


# what `providers.openai` is when a route uses it and `providers:` does not define it
BUILTIN_OPENAI_SETTINGS = ProviderSettings(base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")


class Settings(_Section):
    """All of config.yaml. `routing` is what its routing sections resolve to; `warnings` what start-up should say."""

    storage: StorageSettings = Field(default_factory=StorageSettings, description="a mapping (url, batch_size, ...)")
    capture: CaptureSettings = Field(default_factory=CaptureSettings, description=(
        "a mapping (hosts, max_body_mb, redact_body_secrets)"))
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings, description="a mapping (read_timeout_s)")
    viewer: ViewerSettings = Field(default_factory=ViewerSettings, description="a mapping (host, port, ...)")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings, description="a mapping (port, host)")
    providers: Annotated[dict[str, ProviderSettings], OrEmpty] = Field(default_factory=dict, description=(
        "a mapping of provider names to {base_url, api_key or api_key_env, kind, headers, api}"))
    subagents: SubagentSettings = Field(default_factory=SubagentSettings, description=(
        "a mapping (enable, default_provider, mappings, shadow)"))
    models: Annotated[dict[str, RouteEntry], OrEmpty] = Field(default_factory=dict, description=(
        f"a mapping of Claude model names (globs allowed) to routes: {ROUTE_WORDS}"))
    capabilities: Annotated[dict[str, dict[str, Any]], OrEmpty] = Field(default_factory=dict, description=(
        "a mapping of model globs to capability fields"))
    routing_options: RoutingOptions = Field(default_factory=RoutingOptions, alias="routing", description=(
        "a mapping (ping_interval, agent_dirs, timeout, listen_port, shadow_concurrency)"))
    prices: Annotated[dict[str, PriceSettings], OrEmpty] = Field(default_factory=dict, description=(
        "a mapping of provider/model to {input, output, cache_read} in USD per million tokens"))

    _routing: RoutingSettings = PrivateAttr(default_factory=RoutingSettings)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @property
    def routing(self) -> RoutingSettings:
        return self._routing

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, providers: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
        for name in providers:
            if name == "anthropic" or not _PROVIDER_NAME.fullmatch(name):
                raise ConfigError(name, "provider names use letters, digits, '_', '-', '.'; 'anthropic' is reserved")
        return providers

    @field_validator("prices")
    @classmethod
    def _price_keys(cls, prices: dict[str, PriceSettings]) -> dict[str, PriceSettings]:
        for key in prices:
            provider, _, model = key.partition("/")
            if not _PROVIDER_NAME.fullmatch(provider) or not model.strip():
                raise ConfigError(key, "a price is for provider/model, such as ollama/qwen3:8b or anthropic/claude-x")
        return prices

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {pattern: parse_override(pattern, fields) for pattern, fields in raw.items()}

    @model_validator(mode="after")
    def _resolve_routes(self, info: ValidationInfo) -> Settings:
        # The environment comes only through parse_settings/load_settings; `Settings()` alone reads none.
        context = info.context or {}
        routing, warnings = resolve_routing(self, context.get("env", {}), BUILTIN_OPENAI_SETTINGS,
                                            check_keys=context.get("check_keys", True))
        self._routing, self._warnings = routing, tuple(warnings)
        return self


# --- reading ------------------------------------------------------------------------------------------


def data_dir() -> Path:
    """Where ccbridge keeps its data by default (the SQLite file, the journal)."""
    return Path(platformdirs.user_data_dir("ccbridge"))


def default_url() -> str:
    return f"sqlite:///{data_dir() / 'ccbridge.db'}"


def journal_dir(option: str | None, settings: Settings) -> Path:
    """The journal's folder: the option (ccbridge_journal_dir, --journal), else `storage.journal_dir`, else
    `journal` in the data directory."""
    if option:
        return Path(option).expanduser()
    return settings.storage.journal_dir or data_dir() / "journal"


def parse_settings(raw: Any, env: Mapping[str, str] | None = None, *, check_keys: bool = True) -> Settings:
    """Validate a parsed config.yaml (None or {} means all defaults) together with the environment.

    `check_keys=False` (the viewer, the CLI): provider keys are not required, since nothing is routed there.
    """
    env = os.environ if env is None else env
    try:
        return Settings.model_validate({} if raw is None else raw, context={"env": env, "check_keys": check_keys})
    except ValidationError as exc:
        raise config_error(exc.errors()[0]) from None


def find_config(option: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read: the option, else $CCBRIDGE_CONFIG, else ./config.yaml; None if there is none."""
    env = os.environ if env is None else env
    for candidate, origin in ((option, "ccbridge_config"), (env.get("CCBRIDGE_CONFIG"), "CCBRIDGE_CONFIG")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConfigError(origin, f"no config file at {path}")
            return path
    local = Path("config.yaml")
    return local if local.is_file() else None


def load_settings(option: str | None = None, env: Mapping[str, str] | None = None, *,
                  check_keys: bool = True) -> Settings:
    """Find, read and validate config.yaml (see find_config); defaults when there is none."""
    path = find_config(option, env)
    if path is None:
        return parse_settings({}, env, check_keys=check_keys)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from exc
    return parse_settings(raw, env, check_keys=check_keys)


def storage_url(option: str | None, settings: Settings, env: Mapping[str, str] | None = None) -> str:
    """The capture database: the option (--db, ccbridge_storage_url), else $CCBRIDGE_STORAGE_URL, else
    `storage.url`, else the default SQLite file."""
    env = os.environ if env is None else env
    return option or env.get(STORAGE_URL_ENV) or settings.storage.url or default_url()


# --- pydantic's errors as ConfigError -----------------------------------------------------------------


def config_error(error: ErrorDetails) -> ConfigError:
    """One pydantic error as a ConfigError: the dotted key, and what is allowed there."""
    parts, field, section = _locate(error["loc"])
    key = ".".join(parts) or TOP_LEVEL
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):  # raised by our validators, its key relative to where they sit
        return ConfigError(".".join(p for p in (".".join(parts), cause.key) if p), cause.problem)
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_keys(section))) if section else ""
        return ConfigError(key, f"unknown {'key' if len(parts) > 1 else 'section'}; allowed: {allowed}")
    if error["type"] == "route":
        return ConfigError(key, f"must be {ROUTE_WORDS}")
    what = field.description if field is not None and field.description else None
    if key == TOP_LEVEL:
        what = "a mapping of sections"
    if error["type"] == "missing":
        return ConfigError(key, f"required; expected {what or 'a value'}")
    got = error.get("input")
    return ConfigError(key, f"expected {what}, got {got!r}" if what else f"{error['msg']}, got {got!r}")


def _locate(loc: tuple[int | str, ...]) -> tuple[list[str], FieldInfo | None, type[BaseModel] | None]:
    """Follow a pydantic error location through the model: the dotted key's parts, the innermost field,
    and the section the location's last step is in (for unknown keys)."""
    parts: list[str] = []
    node: Any = Settings
    field: FieldInfo | None = None
    section: type[BaseModel] | None = None
    for step in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            section = node
            name = next((n for n, f in node.model_fields.items() if (f.alias or n) == step), None)
            field = node.model_fields[name] if name else None
            node = field.annotation if field else None
            parts.append(str(step))
        elif _is_union(node):  # a tagged union puts the tag in the location; it is not a key
            node = next((m for m in get_args(node) if _tag(m) == step), None)
        elif get_origin(node) in (tuple, list):
            parts[-1] += f"[{step}]"
            node = get_args(node)[0]
        elif get_origin(node) is dict and _is_entry(get_args(node)[1]):  # the user's own key: a provider, an agent
            parts.append(str(step))
            node = get_args(node)[1]
        else:  # in a plain mapping such as `headers`, the mapping is what is named
            break
    return parts, field, section


def _unwrap(node: Any) -> Any:
    """The type inside Annotated[...] and `X | None`."""
    while True:
        if get_origin(node) is Annotated:
            node = get_args(node)[0]
        elif _is_union(node) and type(None) in get_args(node):  # every `X | None` here has a single X
            node = next(a for a in get_args(node) if a is not type(None))
        else:
            return node


def _is_entry(node: Any) -> bool:
    node = _unwrap(node)
    return _is_union(node) or (isinstance(node, type) and issubclass(node, BaseModel))


def _is_union(node: Any) -> bool:
    return get_origin(node) in (Union, types.UnionType)


def _tag(member: Any) -> str | None:
    return next((m.tag for m in getattr(member, "__metadata__", ()) if isinstance(m, Tag)), None)


def _keys(section: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in section.model_fields.items()]
