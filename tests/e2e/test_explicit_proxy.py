"""Explicit-proxy mode (HTTPS_PROXY style): only the configured API hosts are recorded, the rest passes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.mock_anthropic import MockAnthropic
from tests.support.proxy import ADDON, _launch, mitmdump_bin

pytestmark = pytest.mark.e2e


def test_only_configured_hosts_are_recorded(tmp_path: Path):
    workdir = Path(tempfile.mkdtemp(prefix="explicit-", dir=tmp_path))
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump({"capture": {"hosts": ["127.0.0.1"]}}))
    db_url = f"sqlite:///{workdir / 'cc.db'}"
    args = [str(mitmdump_bin()), "-s", str(ADDON), "--listen-host", "127.0.0.1", "--listen-port", "0",
            "--set", f"confdir={workdir / 'confdir'}", "--set", f"ccbridge_config={config}",
            "--set", f"ccbridge_storage_url={db_url}", "--set", "flow_detail=0"]
    body = {"model": "claude-opus-5-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with MockAnthropic() as api, MockAnthropic() as other, _launch(args, workdir, db_url) as proxy:
        with httpx.Client(proxy=proxy.url, timeout=30) as client:
            recorded = client.post(f"http://127.0.0.1:{api.port}/v1/messages", json=body)
            passed = client.post(f"http://localhost:{other.port}/v1/messages", json=body)
        assert recorded.status_code == passed.status_code == 200
        assert len(api.requests) == len(other.requests) == 1  # both reached their server
    [exchange] = proxy.exchanges()
    assert exchange.host == "127.0.0.1" and exchange.port == api.port and exchange.complete
