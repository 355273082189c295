"""Run the real Claude Code CLI (`make claude-cli` installs it into .tools/) in a sealed scratch setup.

The CLI gets a scratch HOME and project directory and only the environment given here, so the developer's
own Claude config, key and sessions are never read or touched. With `-p` the CLI 2.1.329 sends just
`POST /v1/messages?beta=true` (streaming) per model turn; the Agent tool needs no permission flag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "claude"
FAKE_API_KEY = "sk-ant-api03-ccbridge-test-0000000000000000000000000000000000000000-AAAAAA"


def claude_bin() -> Path:
    """The CLI to run: $CCBRIDGE_CLAUDE_BIN, else .tools/node_modules/.bin/claude; skip (fail in CI) if absent."""
    configured = os.environ.get("CCBRIDGE_CLAUDE_BIN")
    path = Path(configured) if configured else DEFAULT_BIN
    if path.is_file() and os.access(path, os.X_OK) and shutil.which("node"):
        return path
    message = (f"Claude Code CLI not found at {path} (or node is missing): run `make claude-cli`, "
               "or point CCBRIDGE_CLAUDE_BIN at a `claude` executable")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def run_claude(prompt: str, base_url: str, *, tmp_path: Path, agents: dict[str, str] | None = None,
               files: dict[str, str] | None = None, extra_args: tuple[str, ...] = (),
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`claude -p <prompt>` against `base_url`, in a scratch project with `.claude/agents/<name>.md`."""
    binary = claude_bin()
    home = tmp_path / "claude-home"
    project = tmp_path / "claude-project"
    home.mkdir(exist_ok=True)
    project.mkdir(exist_ok=True)
    for name, markdown in (agents or {}).items():
        agent_file = project / ".claude" / "agents" / f"{name}.md"
        agent_file.parent.mkdir(parents=True, exist_ok=True)
        agent_file.write_text(markdown)
    for relative, text in (files or {}).items():
        (project / relative).write_text(text)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": str(tmp_path),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    args = [str(binary), "-p", prompt, "--output-format", "text", "--no-session-persistence", *extra_args]
    # subprocess.run kills the CLI (its own child, by PID) when the timeout expires
    return subprocess.run(args, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, check=False)


def agent_markdown(name: str, description: str, body: str, tools: str = "Read, Grep") -> str:
    """An agent definition file as Claude Code reads it from `.claude/agents/`."""
    return f"---\nname: {name}\ndescription: {description}\ntools: {tools}\nmodel: inherit\n---\n\n{body}\n"
