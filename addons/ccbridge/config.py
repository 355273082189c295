"""`config.yaml`: find it, read it, validate it. A wrong key or value raises ConfigError naming the key.

Where it comes from, first found wins: `--set ccbridge_config=PATH`, `$CCBRIDGE_CONFIG`, `./config.yaml`.
No file at all means defaults. `config.yaml.example` documents every option.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

DEFAULT_HOSTS = ("api.anthropic.com",)


@dataclass(frozen=True)
class StorageConfig:
    url: str | None = None  # None: SQLite in the user's data directory
    batch_size: int = 200
    batch_seconds: float = 0.25


@dataclass(frozen=True)
class CaptureConfig:
    hosts: tuple[str, ...] = DEFAULT_HOSTS  # recorded in explicit-proxy mode; reverse mode records all
    max_body_mb: float = 64.0


@dataclass(frozen=True)
class ViewerConfig:
    host: str = "127.0.0.1"
    port: int = 8083
    password: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Config:
    storage: StorageConfig = field(default_factory=StorageConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    routing: Any = None  # ccbridge.routing.settings.RoutingSettings
    source: Path | None = None


def _expect(key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(key, f"expected {what}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(key, f"expected {what}, got {type(value).__name__} {value!r}")
    return value


def _section(raw: Mapping[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    value = raw.get(name) or {}
    _expect(name, value, dict, "a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return value


def _positive(key: str, value: Any, kind: type = float) -> Any:
    _expect(key, value, (int, float) if kind is float else int, "a positive number" if kind is float else
            "a positive whole number")
    if value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value!r}")
    return value


def _storage(raw: Mapping[str, Any]) -> StorageConfig:
    section = _section(raw, "storage", {"url", "batch_size", "batch_seconds"})
    url = section.get("url")
    if url is not None:
        _expect("storage.url", url, str, "an SQLAlchemy URL such as sqlite:///path.db or postgresql+psycopg://...")
        if "://" not in url:
            raise ConfigError("storage.url", f"expected an SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...), "
                                             f"got {url!r}")
    return StorageConfig(
        url=url,
        batch_size=_positive("storage.batch_size", section.get("batch_size", 200), int),
        batch_seconds=_positive("storage.batch_seconds", section.get("batch_seconds", 0.25)),
    )


def _capture(raw: Mapping[str, Any]) -> CaptureConfig:
    section = _section(raw, "capture", {"hosts", "max_body_mb"})
    hosts = section.get("hosts", list(DEFAULT_HOSTS))
    _expect("capture.hosts", hosts, list, "a list of host names")
    for i, host in enumerate(hosts):
        _expect(f"capture.hosts[{i}]", host, str, "a host name")
    return CaptureConfig(
        hosts=tuple(h.lower() for h in hosts),
        max_body_mb=_positive("capture.max_body_mb", section.get("max_body_mb", 64.0)),
    )


def _viewer(raw: Mapping[str, Any]) -> ViewerConfig:
    section = _section(raw, "viewer", {"host", "port", "password", "token"})
    port = section.get("port", 8083)
    _expect("viewer.port", port, int, "a port number")
    if not 0 < port < 65536:
        raise ConfigError("viewer.port", f"expected 1..65535, got {port}")
    for key in ("host", "password", "token"):
        if section.get(key) is not None:
            _expect(f"viewer.{key}", section[key], str, "a string")
    return ViewerConfig(section.get("host", "127.0.0.1"), port, section.get("password"), section.get("token"))


def parse_config(raw: Any, env: Mapping[str, str] | None = None, source: Path | None = None) -> Config:
    """Validate a parsed config.yaml (None or {} means all defaults)."""
    from .routing.settings import ROUTING_KEYS, parse_routing

    env = os.environ if env is None else env
    raw = {} if raw is None else raw
    _expect("(top level)", raw, dict, "a mapping of sections")
    allowed = {"storage", "capture", "viewer", *ROUTING_KEYS}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(unknown[0], f"unknown section; allowed: {', '.join(sorted(allowed))}")
    return Config(
        storage=_storage(raw),
        capture=_capture(raw),
        viewer=_viewer(raw),
        routing=parse_routing({k: raw[k] for k in ROUTING_KEYS if k in raw}, env),
        source=source,
    )


def find_config(option: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    for candidate, origin in ((option, "ccbridge_config"), (env.get("CCBRIDGE_CONFIG"), "CCBRIDGE_CONFIG")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConfigError(origin, f"no config file at {path}")
            return path
    local = Path("config.yaml")
    return local if local.is_file() else None


def load_config(option: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    path = find_config(option, env)
    if path is None:
        return parse_config({}, env)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from exc
    return parse_config(raw, env, source=path)
