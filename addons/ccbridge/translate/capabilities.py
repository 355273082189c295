"""What each target model accepts on Chat Completions: the one place that knows per-model quirks.

The translator asks `capabilities_for(...)` and never tests a model name itself. Entries are matched
first by provider kind, then by glob on the model name (first match wins), then the user's `capabilities:`
overrides from config.yaml are applied in order, each a partial set of fields.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ccbridge.errors import ConfigError

TokenParam = Literal["max_tokens", "max_completion_tokens"]
EFFORT_SCALE = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
PROVIDER_KINDS = ("openai", "ollama", "vllm", "openrouter", "openai-compatible")


@dataclass(frozen=True)
class ModelCapabilities:
    token_param: TokenParam = "max_tokens"
    max_output: int = 8192
    supports_temperature: bool = True
    supports_top_p: bool = True
    supports_top_k: bool = False  # sent through extra_body (vLLM); OpenAI rejects the field
    supports_stop: bool = True
    max_stop: int = 4
    supports_parallel_tool_calls: bool = True
    supports_stream_usage: bool = True  # stream_options.include_usage
    reasoning_efforts: tuple[str, ...] = ()  # empty: never send reasoning_effort
    disabled_effort: str | None = None  # effort sent when Claude Code asks for no thinking
    reasoning_with_tools: bool = True  # False: Chat Completions rejects tools unless effort is "none"
    sampling_with_reasoning: bool = True  # False: temperature/top_p only without reasoning
    reasoning_summary: bool = True  # Responses API: ask for summaries (OpenAI refuses them to unverified orgs)
    vision: bool = True
    pdf: bool = False  # OpenAI `file` content parts
    system_in_middle: bool = True  # False: mid-conversation system messages become user text
    supports_cache_key: bool = False  # prompt_cache_key
    supports_safety_identifier: bool = False
    cache_control: bool = False  # True: Anthropic `cache_control` marks stay on content parts (OpenRouter to Claude)


_GENERIC = ModelCapabilities()
_OPENAI_BASE = dataclasses.replace(
    _GENERIC,
    token_param="max_completion_tokens",
    max_output=16384,
    pdf=True,
    supports_cache_key=True,
    supports_safety_identifier=True,
)
_O_SERIES = dataclasses.replace(
    _OPENAI_BASE,
    max_output=100000,
    supports_temperature=False,
    supports_top_p=False,
    supports_stop=False,
    supports_parallel_tool_calls=False,
    reasoning_efforts=("low", "medium", "high"),
    sampling_with_reasoning=False,
)
# gpt-5, -mini, -nano and every gpt-5.x answer `stop` with 400 "Unsupported parameter".
_GPT5 = dataclasses.replace(
    _OPENAI_BASE,
    max_output=128000,
    supports_temperature=False,
    supports_top_p=False,
    supports_stop=False,
    reasoning_efforts=("minimal", "low", "medium", "high"),
    sampling_with_reasoning=False,
)
# gpt-5.1 added effort "none" (its default) and accepts temperature/top_p only at that effort.
_GPT5_1 = dataclasses.replace(
    _GPT5,
    supports_temperature=True,
    supports_top_p=True,
    reasoning_efforts=("none", "low", "medium", "high"),
    disabled_effort="none",
)
# gpt-5.2 and later refuse function tools with reasoning on /chat/completions; 5.6 even by default.
_GPT5_2_PLUS = dataclasses.replace(
    _GPT5_1,
    reasoning_efforts=("none", "low", "medium", "high", "xhigh"),
    reasoning_with_tools=False,
)

# (provider kind, model glob, capabilities); first match wins, so specific globs come first.
DEFAULT_TABLE: tuple[tuple[str, str, ModelCapabilities], ...] = (
    ("openai", "gpt-5*-chat*", dataclasses.replace(_OPENAI_BASE, max_output=16384)),
    ("openai", "gpt-5.1*", _GPT5_1),
    ("openai", "gpt-5.[2-9]*", _GPT5_2_PLUS),
    ("openai", "gpt-5*", _GPT5),
    ("openai", "o1*", _O_SERIES),
    ("openai", "o3*", _O_SERIES),
    ("openai", "o4*", _O_SERIES),
    ("openai", "gpt-4.1*", dataclasses.replace(_OPENAI_BASE, max_output=32768)),
    ("openai", "gpt-4o*", dataclasses.replace(_OPENAI_BASE, max_output=16384)),
    ("openai", "*", _OPENAI_BASE),
    # Ollama: no parallel_tool_calls, chat templates reject a system message after the first turn.
    (
        "ollama",
        "*",
        dataclasses.replace(_GENERIC, supports_parallel_tool_calls=False, system_in_middle=False, vision=False),
    ),
    ("vllm", "*", dataclasses.replace(_GENERIC, supports_top_k=True, system_in_middle=False, vision=False)),
    # OpenRouter passes `cache_control` breakpoints on to Anthropic's models (prompt caching there is explicit).
    ("openrouter", "anthropic/*", dataclasses.replace(_GENERIC, max_output=32000, cache_control=True)),
    ("openrouter", "*", dataclasses.replace(_GENERIC, max_output=16384)),
    ("openai-compatible", "*", _GENERIC),
)

_FIELDS = {f.name: f for f in dataclasses.fields(ModelCapabilities)}


def capabilities_for(
    provider_name: str,
    provider_kind: str,
    model: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> ModelCapabilities:
    """The table entry for (kind, model), then every matching user override applied in order.

    An override key matches the model name or `<provider name>/<model name>`, as a glob.
    """
    caps = _table_entry(provider_kind, model)
    for pattern, fields in (overrides or {}).items():
        if _matches(pattern, model) or _matches(pattern, f"{provider_name}/{model}"):
            caps = dataclasses.replace(caps, **fields)
    return caps


def _table_entry(kind: str, model: str) -> ModelCapabilities:
    kind = kind if kind in PROVIDER_KINDS else "openai-compatible"
    for entry_kind, pattern, caps in DEFAULT_TABLE:
        if entry_kind == kind and _matches(pattern, model):
            return caps
    return _GENERIC


def _matches(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def parse_override(key: str, raw: Any) -> dict[str, Any]:
    """Validate one `capabilities:` entry (partial fields) into keyword arguments for `dataclasses.replace`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"must be a mapping of capability fields, got {type(raw).__name__}")
    return {name: _parse_field(f"{key}.{name}", name, value) for name, value in raw.items()}


def _parse_field(key: str, name: Any, value: Any) -> Any:
    if name not in _FIELDS:
        raise ConfigError(key, f"unknown capability; allowed: {', '.join(sorted(_FIELDS))}")
    default = getattr(_GENERIC, name)
    if name == "token_param":
        if value not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(key, "must be max_tokens or max_completion_tokens")
        return value
    if name == "reasoning_efforts":
        if not isinstance(value, list | tuple) or any(v not in EFFORT_SCALE for v in value):
            raise ConfigError(key, f"must be a list drawn from {', '.join(EFFORT_SCALE)}")
        return tuple(value)
    if name == "disabled_effort":
        if value is not None and value not in EFFORT_SCALE:
            raise ConfigError(key, f"must be null or one of {', '.join(EFFORT_SCALE)}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false")
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(key, "must be a positive integer")
    return value
