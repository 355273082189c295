"""Done-when #4 of viewer v2 in a real browser: a session with two parallel subagent runs has three lanes on its
timeline, the runs' bars overlap as recorded, and clicking a bar lands on its turn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ccbridge.storage.db import open_engine
from tests.support.browser import viewer_server
from tests.support.builders import Conversation, text, tool_result, tool_use, user, write

pytestmark = pytest.mark.browser
SESSION = "timeline-session"


def parallel_runs() -> list[Any]:
    """The main thread calls two agents in one answer; both run at once (their requests interleave)."""
    start = 1_800_000_000.0
    main = Conversation(SESSION, [start])
    calls = [tool_use(f"toolu_{n}", "Agent", {"description": f"Review part {n}", "prompt": f"Review part {n}.",
                                               "subagent_type": "code-reviewer"}) for n in (1, 2)]
    items = [main.turn([user("Review both parts in parallel.")], calls)]
    runs = [Conversation(SESSION, [start + 1.0 + 0.5 * n], agent_id=f"a{n:016x}", tools=[]) for n in (1, 2)]
    for n, run in enumerate(runs, start=1):
        items.append(run.turn([user(f"Review part {n}.")], [text(f"Part {n} looks fine. MARKER-RUN-{n}")]))
    main.clock[0] = start + 4.0
    results = [tool_result(f"toolu_{n}", f"Part {n} looks fine.\nagentId: a{n:016x}") for n in (1, 2)]
    items.append(main.turn(results, [text("Both parts are fine.")]))
    return items


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("timeline-db")
    url = f"sqlite:///{folder / 'cc.db'}"
    engine = open_engine(url)
    write(engine, parallel_runs())
    engine.dispose()
    with viewer_server(url, folder) as base:
        yield base


def test_parallel_runs_have_lanes_that_overlap_and_bars_lead_to_turns(server: str, page: Any) -> None:
    page.goto(f"{server}/sessions/{SESSION}")
    page.click("nav.tabs >> text=Timeline")
    page.wait_for_selector("svg.timeline")
    lanes = page.locator("svg.timeline g.lane")
    assert lanes.count() == 3, "the main thread and one lane per run"
    run_bars = [lanes.nth(i).locator("a.bar rect").first.bounding_box() for i in (1, 2)]
    first, second = run_bars
    assert first["x"] < second["x"] + second["width"] and second["x"] < first["x"] + first["width"], \
        "the two runs' bars overlap in time"
    exchange = lanes.nth(2).locator("a.bar").first.get_attribute("data-exchange")
    lanes.nth(2).locator("a.bar rect").first.click()
    page.wait_for_url(f"**/sessions/{SESSION}#x-{exchange}")
    turn = page.locator(f"#x-{exchange}")
    turn.wait_for(state="visible")
    assert "MARKER-RUN-2" in turn.inner_text(), "the bar led to the run's turn, opened"
    assert page.evaluate("window.__csp") == []
