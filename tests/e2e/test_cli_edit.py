"""Done-when #1 of viewer v2: the real CLI edits a file with the Edit tool through the proxy (Read, Edit, answer),
and the session page shows the Edit call exactly once, its diff once, and its result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

from ccbridge.storage.db import open_engine
from tests.support.claude_cli import run_claude
from tests.support.mock_anthropic import MockAnthropic, MockRequest, Reply, default_reply, text_reply, tool_use_reply
from tests.support.proxy import ProxyProcess
from viewer.app import create_app

pytestmark = pytest.mark.e2e

FINAL = "I changed the greeting. MARKER-EDIT-FINAL"


def tool_results(body: Any) -> int:
    messages = body.get("messages", []) if isinstance(body, dict) else []
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result")


def read_edit_answer(target: Path) -> Any:
    """The model's script: read the file, then edit it, then answer."""

    def handler(request: MockRequest) -> Reply:
        if request.method != "POST" or request.path != "/v1/messages" or not request.json().get("tools"):
            return default_reply(request)
        done = tool_results(request.json())
        if done == 0:
            return tool_use_reply(request, "Read", {"file_path": str(target)}, preamble="Let me read it first.")
        if done == 1:
            return tool_use_reply(request, "Edit", {"file_path": str(target), "old_string": "print('hello')",
                                                    "new_string": "print('hello, world')"})
        return text_reply(request, FINAL)

    return handler


def test_real_cli_edit_shows_once_with_its_diff_and_result(mock_anthropic: MockAnthropic, proxy: ProxyProcess,
                                                           tmp_path: Path) -> None:
    target = tmp_path / "claude-project" / "hello.py"
    mock_anthropic.handler = read_edit_answer(target)
    result = run_claude("Change the greeting in hello.py.", proxy.url, tmp_path=tmp_path,
                        files={"hello.py": "print('hello')\n"}, extra_args=("--permission-mode", "acceptEdits"))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "print('hello, world')\n", "the CLI did the edit"
    assert proxy.stop() == 0, proxy.log_tail()
    engine = open_engine(proxy.db_url)
    try:
        with TestClient(create_app(engine)) as client:
            (session,) = client.get("/api/sessions").json()["sessions"]
            page = BeautifulSoup(client.get(f"/sessions/{session['id']}").text, "html.parser")
    finally:
        engine.dispose()
    transcript = page.select_one("#transcript")
    edits = [c for c in transcript.select("div.tool-call") if c.select_one(".tool-name").get_text() == "Edit"]
    assert len(edits) == 1, "the Edit call shows exactly once"
    assert len(transcript.select("pre.diff")) == 1, "its diff shows once"
    assert [s.get_text() for s in edits[0].select("pre.diff span.add")][-1] == "+print('hello, world')"
    result_text = edits[0].select_one("details.result").get_text()
    assert "hello.py" in result_text or "updated" in result_text.lower()
    assert FINAL in transcript.get_text()
    assert len([c for c in transcript.select("div.tool-call") if c.select_one(".tool-name").get_text() == "Read"]) == 1
