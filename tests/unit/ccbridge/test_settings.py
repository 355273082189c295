"""config.yaml validation: every wrong value is refused with a message naming the key and what is allowed."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from ccbridge.errors import ConfigError
from ccbridge.settings import Settings, find_config, load_settings, parse_settings

EXAMPLE = Path(__file__).resolve().parents[3] / "config.yaml.example"


def test_no_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_settings(None, env={})
    assert config.storage.url is None and config.capture.hosts == ("api.anthropic.com",)
    assert config.viewer.host == "127.0.0.1" and config.viewer.port == 8083


def test_the_example_file_is_valid():
    config = load_settings(str(EXAMPLE), env={})
    assert isinstance(config, Settings) and config.capture.max_body_mb == 64


@pytest.mark.parametrize("raw,key,words", [
    ({"storag": {}}, "storag", "unknown section"),
    ({"storage": {"uri": "x"}}, "storage.uri", "unknown key"),
    ({"storage": {"url": 5}}, "storage.url", "SQLAlchemy URL"),
    ({"storage": {"url": "just-a-path.db"}}, "storage.url", "SQLAlchemy URL"),
    ({"storage": {"batch_size": "ten"}}, "storage.batch_size", "whole number"),
    ({"storage": {"batch_size": 0}}, "storage.batch_size", "greater than 0"),
    ({"storage": {"batch_seconds": True}}, "storage.batch_seconds", "positive number"),
    ({"capture": {"hosts": "api.anthropic.com"}}, "capture.hosts", "list of host names"),
    ({"capture": {"hosts": [3]}}, "capture.hosts[0]", "host name"),
    ({"viewer": {"port": 70000}}, "viewer.port", "1..65535"),
    ({"routing": {"listen_port": 70000}}, "routing.listen_port", "0..65535"),
    ({"routing": {"listen_port": "8090"}}, "routing.listen_port", "0..65535"),
    ({"viewer": "yes"}, "viewer", "mapping"),
    ({"prices": {"qwen3:8b": {"input": 0, "output": 0}}}, "prices.qwen3:8b", "provider/model"),
    ({"prices": {"ollama/qwen3:8b": {"input": -1, "output": 0}}}, "prices.ollama/qwen3:8b.input", "0 or more"),
    ({"prices": {"ollama/qwen3:8b": {"input": 0}}}, "prices.ollama/qwen3:8b.output", "required"),
    ({"prices": {"ollama/qwen3:8b": {"input": "free", "output": 0}}}, "prices.ollama/qwen3:8b.input", "USD per"),
    (["not", "a", "mapping"], "(top level)", "mapping"),
])
def test_wrong_values_name_their_key(raw, key, words):
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, env={})
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ") and words in str(caught.value)


def test_sections_whose_keys_are_all_commented_out_mean_defaults(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("storage:\n  # url: sqlite:///x.db\nproviders:\nsubagents:\n  mappings:\nrouting:\n")
    config = load_settings(str(path), env={})
    assert config.storage.url is None and config.routing.providers == {} and not config.routing.enabled


def test_config_path_from_option_then_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("capture: {hosts: [a.example]}\n")
    b.write_text("capture: {hosts: [b.example]}\n")
    assert find_config(str(a), env={"CCBRIDGE_CONFIG": str(b)}) == a
    assert find_config(None, env={"CCBRIDGE_CONFIG": str(b)}) == b
    assert find_config(None, env={}) is None
    (tmp_path / "config.yaml").write_text("{}\n")
    assert find_config(None, env={}) == Path("config.yaml")
    with pytest.raises(ConfigError, match="CCBRIDGE_CONFIG: no config file"):
        find_config(None, env={"CCBRIDGE_CONFIG": str(tmp_path / "missing.yaml")})


def test_invalid_yaml_names_the_file(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("storage: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(str(bad), env={})


# --- config.yaml.example documents the model ----------------------------------------------------------------


def key_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key a config.yaml may hold, `*` standing for a name the user picks (a provider, an agent)."""
    for name, field in model.model_fields.items():
        path = (*prefix, field.alias or name)
        yield path
        for inner, keyed in sections_in(field.annotation):
            yield from key_paths(inner, (*path, "*") if keyed else path)


def sections_in(annotation: Any, keyed: bool = False) -> Iterator[tuple[type[BaseModel], bool]]:
    """The models a field's type leads to, and whether a user-chosen key comes first (dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, keyed
        return
    args = get_args(annotation)
    if get_origin(annotation) is dict:
        yield from sections_in(args[1], keyed=True)
    elif get_origin(annotation) is Annotated:
        yield from sections_in(args[0], keyed)
    else:  # unions (`X | None`, the two forms of a route)
        for arg in args:
            yield from sections_in(arg, keyed)


def section_blocks(text: str) -> dict[str, str]:
    """Top-level section name -> its text, commented-out sections included (`# models:`)."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        header = re.match(r"#? ?([a-z_]+):", line)
        if header:
            current = header.group(1)
            blocks[current] = ""
        if current is not None:
            blocks[current] += line + "\n"
    return blocks


def test_the_example_shows_every_key_of_the_model():
    blocks = section_blocks(EXAMPLE.read_text())
    paths = list(key_paths(Settings))
    assert ("providers", "*", "api_key_env") in paths and ("subagents", "mappings", "*", "fallback") in paths
    missing = []
    for section, *rest in paths:
        block = blocks.get(section, "")
        if not block or not all(re.search(rf"\b{re.escape(name)}\s*:", block) for name in rest if name != "*"):
            missing.append(".".join((section, *rest)))
    assert not missing, f"config.yaml.example does not mention: {', '.join(missing)}"


def test_routing_listen_port_defaults_to_any_free_port():
    assert parse_settings({}, env={}).routing.listen_port == 0
    assert parse_settings({"routing": {"listen_port": 8091}}, env={}).routing.listen_port == 8091


def test_prices_are_keyed_by_provider_and_model():
    prices = parse_settings({"prices": {"ollama/qwen3:8b": {"input": 0, "output": 0},
                                        "openrouter/openai/gpt-5-mini": {"input": 0.25, "output": 2}}}, env={}).prices
    assert (prices["ollama/qwen3:8b"].input, prices["ollama/qwen3:8b"].output) == (0, 0)
    mini = prices["openrouter/openai/gpt-5-mini"]
    assert (mini.input, mini.output, mini.cache_read) == (0.25, 2, None)
    assert parse_settings({"prices": None}, env={}).prices == {}
