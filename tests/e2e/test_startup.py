"""A wrong config stops mitmdump at start-up with a message naming the key (real mitmdump)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.proxy import ADDON, mitmdump_bin, start_proxy

pytestmark = pytest.mark.e2e


def start(tmp_path: Path, config_text: str | None, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [str(mitmdump_bin()), "-s", str(ADDON), "--mode", "reverse:http://127.0.0.1:9", "--listen-host",
            "127.0.0.1", "--listen-port", "0", "--set", f"confdir={tmp_path / 'confdir'}"]
    if config_text is not None:
        path = tmp_path / "config.yaml"
        path.write_text(config_text)
        args += ["--set", f"ccbridge_config={path}"]
    # a wrong config must stop it long before the timeout
    return subprocess.run([*args, *extra], capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize("config_text,message", [
    ("storage:\n  batch_sise: 10\n",
     "storage.batch_sise: unknown key; allowed: batch_seconds, batch_size, journal_dir, url"),
    ("capture:\n  max_body_mb: lots\n", "capture.max_body_mb: expected a positive number"),
    ("viewer:\n  port: 0\n", "viewer.port: expected 1..65535"),
    ("routng: {}\n", "routng: unknown section"),
])
def test_wrong_config_stops_start_up_naming_the_key(tmp_path: Path, config_text: str, message: str):
    result = start(tmp_path, config_text)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_missing_config_file_and_bad_storage_url(tmp_path: Path):
    result = start(tmp_path, None, "--set", f"ccbridge_config={tmp_path / 'nope.yaml'}")
    assert result.returncode != 0 and "no config file at" in result.stdout + result.stderr
    result = start(tmp_path, None, "--set", "ccbridge_storage_url=nosuchdb://x/y")
    assert result.returncode != 0 and "ccbridge storage.url 'nosuchdb://x/y': cannot open" in result.stdout


def test_a_provider_no_route_uses_is_named_in_a_warning_and_not_asked_for_its_key(tmp_path: Path):
    require_tool(mitmdump_bin(), "run `make venv`")
    config = {
        "providers": {"ollama": {"base_url": "http://127.0.0.1:11434/v1", "api_key": "ollama"},
                      "spare": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "CCBRIDGE_TEST_UNSET_KEY"}},
        "subagents": {"mappings": {"x": "ollama/qwen3:8b"}},
    }
    with start_proxy("http://127.0.0.1:9", tmp_path, config) as proxy:
        pass
    assert "providers.spare: no route uses this provider" in proxy.log()
