"""config.yaml validation: every wrong value is refused with a message naming the key and what is allowed."""

from pathlib import Path

import pytest

from ccbridge.errors import ConfigError
from ccbridge.settings import Settings, find_config, load_settings, parse_settings


def test_no_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_settings(None, env={})
    assert config.storage.url is None and config.capture.hosts == ("api.anthropic.com",)
    assert config.viewer.host == "127.0.0.1" and config.viewer.port == 8083


def test_the_example_file_is_valid():
    example = Path(__file__).resolve().parents[2] / "config.yaml.example"
    config = load_settings(str(example), env={})
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
    ({"viewer": "yes"}, "viewer", "mapping"),
    (["not", "a", "mapping"], "(top level)", "mapping"),
])
def test_wrong_values_name_their_key(raw, key, words):
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, env={})
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ") and words in str(caught.value)


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
