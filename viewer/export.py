"""A session as a Markdown document: the transcript a person would read, subagents nested as quotes."""

from __future__ import annotations

import json
from typing import Any

from . import costs
from .messages import block_text, split_reminders
from .transcript import BlockView, MessageView, RunView, ThreadView, Transcript

FENCE = "````"  # longer than any ``` inside captured code, so a captured fence cannot close ours


def _quote(lines: list[str], depth: int) -> list[str]:
    prefix = "> " * depth
    return [f"{prefix}{line}".rstrip() for line in lines]


def _block(view: BlockView, depth: int) -> list[str]:
    kind, block = view.kind, view.block
    if kind == "text":
        out = []
        for reminder, piece in split_reminders(block_text(block)):
            out += ["*(system reminder omitted)*"] if reminder else piece.strip().splitlines()
        return out
    if kind == "thinking":
        return ["*Thinking:*", *(f"_{line}_" if line.strip() else "" for line in block_text(block).splitlines())]
    if kind == "tool_use":
        out = [f"**Tool call `{block.get('name')}`**", FENCE + "json",
               *json.dumps(view.input, indent=2, ensure_ascii=False).splitlines(), FENCE]
        if view.result is not None:
            out += ["**Result:**", FENCE, *block_text(view.result).splitlines(), FENCE]
        for run in view.runs:
            out += ["", *_run(run, depth + 1)]
        return out
    if kind == "tool_result":
        return ["**Tool result:**", FENCE, *block_text(block).splitlines(), FENCE]
    if kind == "image":
        return ["*(image)*"]
    return [f"*({kind} block)*"]


def _message(view: MessageView, depth: int) -> list[str]:
    out = [f"**{view.role.capitalize()}:**"]
    if view.role == "system":
        return ["*(system message omitted)*"]
    for block in view.blocks:
        out += [*_block(block, depth), ""]
    return out


def _thread(view: ThreadView, depth: int, level: int) -> list[str]:
    t = view.thread
    title = f"{'#' * level} Thread {t.id}" + (f" ({t.link} of {t.continues})" if t.link else "")
    out = [title, ""]
    for turn in view.turns:
        e = turn.exchange
        out += [f"{'#' * (level + 1)} Turn {turn.number} · {e.model or '?'} · {e.started_at:%Y-%m-%d %H:%M:%S} UTC"
                f" · {costs.usd(turn.cost)}", ""]
        for message in turn.inputs:
            out += _message(message, depth)
        if turn.answer is not None:
            out += _message(turn.answer, depth)
    return out


def _run(view: RunView, depth: int) -> list[str]:
    run = view.run
    route = view.route
    head = [f"**Subagent {view.subagent_type or ''} `{run.agent_id or '?'}`**"
            + (f" routed to {route.get('provider')}/{route.get('model')}" if route else ""), ""]
    body: list[str] = []
    for thread in view.threads:
        body += _thread(thread, depth, 4)
    return _quote(head + body, depth)


def session_markdown(session_id: str, summary: dict[str, Any] | None, transcript: Transcript) -> str:
    lines = [f"# Claude Code session {session_id}", ""]
    if summary:
        lines += [f"- Started: {summary['started_at']}", f"- Last activity: {summary['last_activity_at']}",
                  f"- Client: {summary['client_version'] or '?'}", f"- Project: {summary['project_dir'] or '?'}",
                  f"- Models: {', '.join(summary['models'])}", f"- Requests: {summary['requests']}",
                  f"- Cost: {summary['cost_usd'] or 'unknown'} USD", ""]
    for thread in transcript.threads:
        lines += _thread(thread, 0, 2)
    for run in transcript.unlinked_runs:
        lines += ["## Subagent not linked to a call", "", *_run(run, 1), ""]
    return "\n".join(lines).rstrip() + "\n"
