"""Viewer render times: a 200-turn session with 10 subagent runs, and the sessions page over 10,000 sessions.

`run()` returns (name, value, unit) rows; targets: session page ≤ 100 ms, sessions page < 150 ms (server time,
median through FastAPI's TestClient), a live refresh after one new turn ≤ 20 KB.
Run alone with `python -m tests.bench.viewer`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from ccbridge.storage.db import open_engine
from tests.support.builders import Conversation, big_session, text, user, write
from viewer.app import create_app

SESSIONS = 10_000
REPEAT = 7


def _median_ms(client: TestClient, url: str, repeat: int = REPEAT) -> float:
    client.get(url)  # warm caches (templates, prices)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text[:300]
    return statistics.median(times)


def _many_sessions(count: int) -> list:  # type: ignore[type-arg]
    items = []
    for i in range(count):
        conv = Conversation(f"bench-{i:05d}", [1_780_000_000.0 + i * 60])
        items.append(conv.turn([user(f"task {i}")], [text("done")]))
    return items


def live_refresh_bytes(client: TestClient, engine: Engine, session_id: str) -> tuple[int, int]:
    """Bytes of the page, and of the live refresh the open page gets after one new main turn."""
    page = client.get(f"/sessions/{session_id}").text
    poll = BeautifulSoup(page, "html.parser").select_one("#live")["hx-get"]
    conv = Conversation(session_id, [1_799_000_000.0])
    conv.messages = [user("a new question")]  # one new request, a thread of its own (as after /clear)
    write(engine, [conv.turn([], [text("one new turn")])])
    response = client.get(str(poll))
    assert response.status_code == 200 and 'id="transcript"' not in response.text, "only the new turn is sent"
    return len(page.encode()), len(response.content)


def run() -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        big = big_session("bench-big", turns=200, runs=10, start=1_790_000_000.0)
        write(engine, big)
        write(engine, _many_sessions(SESSIONS - 1))
        with TestClient(create_app(engine)) as client:
            session_ms = _median_ms(client, "/sessions/bench-big")
            page = client.get("/sessions/bench-big").text
            assert page.count('class="subagent"') == 10, "all 10 subagent runs are nested"
            sessions_ms = _median_ms(client, "/")
            api_ms = _median_ms(client, "/api/sessions")
            page_bytes, refresh_bytes = live_refresh_bytes(client, engine, "bench-big")
        engine.dispose()
    return [
        ("viewer session page (200 turns, 10 subagent runs)", round(session_ms, 1), "ms"),
        (f"viewer sessions page ({SESSIONS:,} sessions)", round(sessions_ms, 1), "ms"),
        (f"viewer /api/sessions ({SESSIONS:,} sessions)", round(api_ms, 1), "ms"),
        ("viewer big session requests", float(len(big)), "requests"),
        ("viewer session page size (200 turns)", round(page_bytes / 1000, 1), "KB"),
        ("viewer live refresh after one new turn (200 turns)", round(refresh_bytes / 1000, 1), "KB"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name}: {value} {unit}")
