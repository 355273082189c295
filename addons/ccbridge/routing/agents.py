"""Which Claude Code subagent sent a request.

A request is a subagent's when it carries `x-claude-code-agent-id` or its billing system block says
`cc_is_subagent=true` (see `ccbridge.identity`). Its type is then found by two rules:

1. `agent_call`: the parent's `Agent` (older CLIs: `Task`) tool call, seen earlier in the same session,
   whose `prompt` is this request's first user message -> the call's `subagent_type`. Works for built-in
   agents too.
2. `system_prompt`: a system block starts with (or contains) the body of an agent file from
   `.claude/agents/*.md` -> that agent's name.

Tags or prompts quoted inside a request that is not itself a subagent's are never used.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ccbridge.claude_code import BILLING_PREFIX, DELEGATION_TOOLS
from ccbridge.identity import Identity

log = logging.getLogger(__name__)

DEFAULT_SUBAGENT_TYPE = "general-purpose"  # what Claude Code runs when the call names no type
Rule = Literal["agent_call", "system_prompt"]


@dataclass(frozen=True)
class AgentDefinition:
    name: str
    prompt: str
    description: str = ""
    tools: tuple[str, ...] = ()
    model: str | None = None
    path: Path | None = None


@dataclass(frozen=True)
class AgentCall:
    tool_use_id: str
    subagent_type: str
    prompt: str
    description: str = ""


@dataclass(frozen=True)
class Recognition:
    name: str | None = None
    rule: Rule | None = None


# --- agent files --------------------------------------------------------------------------------------


def parse_agent_file(text: str, stem: str, path: Path | None = None) -> AgentDefinition:
    """An agent file: YAML front matter between the first two `---` lines, then the prompt.

    Only those two lines delimit the front matter, so a `---` rule inside the prompt is prompt text.
    Raises ValueError when there is no front matter or it is not a YAML mapping.
    """
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        raise ValueError("no front matter: the file must start with a '---' line")
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
    if end is None:
        raise ValueError("front matter is not closed by a second '---' line")
    meta = yaml.safe_load("".join(lines[1:end])) or {}
    if not isinstance(meta, dict):
        raise ValueError("front matter must be a YAML mapping")
    name = meta.get("name")
    model = meta.get("model")
    return AgentDefinition(
        name=name.strip() if isinstance(name, str) and name.strip() else stem,
        prompt="".join(lines[end + 1 :]).strip(),
        description=str(meta.get("description") or ""),
        tools=_tools(meta.get("tools")),
        model=str(model) if model is not None else None,
        path=path,
    )


def _tools(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list):
        return tuple(str(t).strip() for t in value if str(t).strip())
    return ()


class AgentDefinitions:
    """The agent files of some folders, re-read when a file changes (checked at most once a second).

    Later folders win on a name clash, as Claude Code's project agents override the user's.
    """

    def __init__(
        self, dirs: Sequence[Path | str], *, clock: Callable[[], float] = time.monotonic, interval: float = 1.0
    ) -> None:
        self.dirs = tuple(Path(d).expanduser() for d in dirs)
        self._clock = clock
        self._interval = interval
        self._checked_at: float | None = None
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._definitions: tuple[AgentDefinition, ...] = ()

    def __iter__(self) -> Iterator[AgentDefinition]:
        self.refresh()
        return iter(self._definitions)

    def get(self, name: str) -> AgentDefinition | None:
        return next((d for d in self if d.name == name), None)

    def refresh(self) -> None:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._interval:
            return
        self._checked_at = now
        files = self._files()
        stamp = tuple(_stamp(f) for f in files)
        if stamp != self._stamp:
            self._stamp = stamp
            self._definitions = _load(files)

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for folder in self.dirs:
            if folder.is_dir():
                files.extend(sorted(folder.glob("*.md")))
        return files


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), stat.st_mtime_ns, stat.st_size)


def _load(files: Iterable[Path]) -> tuple[AgentDefinition, ...]:
    by_name: dict[str, AgentDefinition] = {}
    for path in files:
        try:
            definition = parse_agent_file(path.read_text(encoding="utf-8"), path.stem, path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            log.warning("skipping agent file %s: %s", path, exc)
            continue
        by_name[definition.name] = definition
    return tuple(by_name.values())


# --- the parent's delegation calls ----------------------------------------------------------------------


def agent_calls_in(body_or_message: Mapping[str, Any]) -> list[AgentCall]:
    """The Agent/Task tool calls in a request body's assistant turns, or in one assistant message."""
    messages = (body_or_message.get("messages") or []) if "messages" in body_or_message else [body_or_message]
    calls = []
    for message in messages:
        content = message.get("content") if message.get("role") == "assistant" else None
        for block in content if isinstance(content, list) else []:
            call = _agent_call(block)
            if call is not None:
                calls.append(call)
    return calls


def _agent_call(block: Mapping[str, Any]) -> AgentCall | None:
    if block.get("type") != "tool_use" or block.get("name") not in DELEGATION_TOOLS:
        return None
    raw_input = block.get("input")
    args: Mapping[str, Any] = raw_input if isinstance(raw_input, Mapping) else {}
    prompt = args.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    return AgentCall(
        tool_use_id=str(block.get("id", "")),
        subagent_type=str(args.get("subagent_type") or DEFAULT_SUBAGENT_TYPE),
        prompt=prompt,
        description=str(args.get("description") or ""),
    )


# --- recognition --------------------------------------------------------------------------------------


def recognise_agent(
    body: Mapping[str, Any],
    who: Identity,
    seen_calls: Sequence[AgentCall],
    definitions: Iterable[AgentDefinition],
) -> Recognition:
    """Which agent sent `body` (identified as `who`), by the rules in the module docstring; empty if none."""
    if not who.is_subagent:
        return Recognition()
    texts = first_user_texts(body)
    for call in reversed(seen_calls):  # the latest call wins if a prompt was reused
        if call.prompt.strip() in texts:
            return Recognition(call.subagent_type, "agent_call")
    name = _match_system_prompt(_system_texts(body), definitions)
    if name is not None:
        return Recognition(name, "system_prompt")
    return Recognition()


def first_user_texts(body: Mapping[str, Any]) -> set[str]:
    """Each text block of the first user message, and all of them joined, whitespace-stripped.

    Claude Code may put a `<system-reminder>` block before the delegated prompt (2.1.197 does).
    """
    first = next((m for m in body.get("messages") or [] if m.get("role") == "user"), None)
    content = first.get("content") if first else None
    if isinstance(content, str):
        return {content.strip()}
    blocks = [b.get("text", "") for b in content or [] if b.get("type") == "text"]
    return {b.strip() for b in blocks} | {"".join(blocks).strip(), "\n\n".join(blocks).strip()}


def _system_texts(body: Mapping[str, Any]) -> list[str]:
    system = body.get("system")
    if isinstance(system, str):
        return [system.strip()]
    texts = [b.get("text", "") for b in system or [] if isinstance(b, Mapping) and b.get("type") == "text"]
    return [t.strip() for t in texts if t.strip() and not t.startswith(BILLING_PREFIX)]


def _match_system_prompt(system: list[str], definitions: Iterable[AgentDefinition]) -> str | None:
    """The agent whose prompt opens a system block (else appears in one); the longest prompt wins."""
    starts: list[AgentDefinition] = []
    contains: list[AgentDefinition] = []
    for definition in definitions:
        if not definition.prompt:
            continue
        if any(text.startswith(definition.prompt) for text in system):
            starts.append(definition)
        elif any(definition.prompt in text for text in system):
            contains.append(definition)
    for found in (starts, contains):
        if found:
            return max(found, key=lambda d: len(d.prompt)).name
    return None


# --- memory across requests ---------------------------------------------------------------------------


class AgentMemory:
    """Agent calls seen per session, and what each agent id was recognised as, both LRU-bounded.

    Later turns of a subagent (same `x-claude-code-agent-id`) are routed like its first one even after
    the parent's call has been forgotten. Not thread-safe: use it from the proxy's event loop only.
    """

    def __init__(self, max_sessions: int = 1000, max_agents: int = 5000, calls_per_session: int = 200) -> None:
        self.max_sessions = max_sessions
        self.max_agents = max_agents
        self.calls_per_session = calls_per_session
        self._calls: OrderedDict[str, list[AgentCall]] = OrderedDict()
        self._agents: OrderedDict[str, Recognition] = OrderedDict()

    def remember_calls(self, session_id: str | None, calls: Iterable[AgentCall]) -> None:
        if not session_id:
            return
        known = self._calls.setdefault(session_id, [])
        ids = {c.tool_use_id for c in known}
        for call in calls:  # every request repeats the history, so most calls are already known
            if call.tool_use_id not in ids:
                ids.add(call.tool_use_id)
                known.append(call)
        del known[: max(0, len(known) - self.calls_per_session)]
        _touch(self._calls, session_id, self.max_sessions)

    def calls(self, session_id: str | None) -> list[AgentCall]:
        if not session_id or session_id not in self._calls:
            return []
        _touch(self._calls, session_id, self.max_sessions)
        return list(self._calls[session_id])

    def remember_agent(self, agent_id: str | None, recognition: Recognition) -> None:
        if agent_id and recognition.name:
            self._agents[agent_id] = recognition
            _touch(self._agents, agent_id, self.max_agents)

    def agent(self, agent_id: str | None) -> Recognition | None:
        if not agent_id or agent_id not in self._agents:
            return None
        _touch(self._agents, agent_id, self.max_agents)
        return self._agents[agent_id]

    def recognise(self, body: Mapping[str, Any], who: Identity, definitions: Iterable[AgentDefinition]) -> Recognition:
        """`recognise_agent` with this memory's calls, remembering the answer per agent id."""
        if not who.is_subagent:
            return Recognition()
        known = self.agent(who.agent_id)
        if known is not None:
            return known
        found = recognise_agent(body, who, self.calls(who.session_id), definitions)
        self.remember_agent(who.agent_id, found)
        return found


def _touch(cache: OrderedDict[str, Any], key: str, limit: int) -> None:
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)
