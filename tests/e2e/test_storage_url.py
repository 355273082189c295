"""A real mitmdump given only $CCBRIDGE_STORAGE_URL records into that database (the CLI's and the viewer's
side of the same rule: tests/unit/ccbridge/test_storage_url.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import require_tool
from tests.support.mock_anthropic import MockAnthropic
from tests.support.proxy import mitmdump_bin, start_proxy

pytestmark = pytest.mark.e2e

HEADERS = {"x-api-key": "sk-ant-api03-fake-key", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-opus-5-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def test_the_proxy_records_into_the_database_of_the_environment(mock_anthropic: MockAnthropic,
                                                                tmp_path: Path) -> None:
    require_tool(mitmdump_bin(), "run `make venv`")
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    with start_proxy(mock_anthropic.url, tmp_path, storage_url=url, storage_url_from_env=True) as proxy:
        assert not any("ccbridge_storage_url" in arg for arg in proxy.popen.args), "the URL comes from env only"
        response = httpx.post(f"{proxy.url}/v1/messages", json=BODY, headers=HEADERS, timeout=30)
        assert response.status_code == 200
    assert proxy.db_url == url
    exchanges = proxy.exchanges()
    assert [(e.method, e.path, e.status_code) for e in exchanges] == [("POST", "/v1/messages", 200)]
