"""What an open session page needs to catch up: which turns to replace, which to append, or the whole
transcript when the threads changed shape. Pure: two transcripts (as the page shows it, as it is now) in.

A turn is the unit sent: a top-level turn of a main thread, with every subagent run nested under its calls, so
a subagent's new request re-sends the one parent turn that holds its run.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from .transcript import RunView, ThreadView, Transcript, TurnView


@dataclass
class Update:
    full: bool = False  # the threads changed shape: send the whole transcript
    replaced: list[TurnView] = field(default_factory=list)  # turns the page has, changed
    appended: list[tuple[str, TurnView]] = field(default_factory=list)  # (thread id, new turn)
    new_threads: list[ThreadView] = field(default_factory=list)
    unlinked: bool = False  # the section of runs not linked to a call changed
    side: bool = False  # the side requests changed

    @property
    def empty(self) -> bool:
        return not (self.full or self.replaced or self.appended or self.new_threads or self.unlinked or self.side)


def _run_ids(run: RunView) -> set[int]:
    return {i for t in run.threads for turn in t.turns for i in turn_ids(turn)}


def turn_ids(turn: TurnView) -> set[int]:
    """Every exchange shown in a turn: its attempts and the requests of the subagent runs nested in it."""
    found = set(turn.exchange_ids)
    for message in [*turn.inputs, *([turn.answer] if turn.answer else [])]:
        for block in message.blocks:
            for run in block.runs:
                found |= _run_ids(run)
    return found


def plan(shown: Transcript, now: Transcript, changed: Collection[int]) -> Update:
    """How to bring a page showing `shown` to `now`, given the exchanges that are new or changed since."""
    changed = set(changed)
    update = Update()
    if not shown.threads or [t.thread.id for t in now.threads[: len(shown.threads)]] != [
            t.thread.id for t in shown.threads]:
        return Update(full=True)
    for before, after in zip(shown.threads, now.threads, strict=False):
        old = [t.anchor for t in before.turns]
        if [t.anchor for t in after.turns[: len(old)]] != old:
            return Update(full=True)
        for was, turn in zip(before.turns, after.turns, strict=False):
            ids = turn_ids(turn)
            if ids != turn_ids(was) or ids & changed:
                update.replaced.append(turn)
        update.appended += [(after.thread.id, t) for t in after.turns[len(old):]]
    update.new_threads = now.threads[len(shown.threads):]
    runs_before = [_run_ids(r) for r in shown.unlinked_runs]
    runs_now = [_run_ids(r) for r in now.unlinked_runs]
    update.unlinked = runs_before != runs_now or any(ids & changed for ids in runs_now)
    update.side = [e.id for e in shown.side] != [e.id for e in now.side]
    return update
