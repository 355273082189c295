"""Shadow copies: sent in the background, at most `limit` at once (the rest dropped and counted), each answer
handed to storage as a journal record that names the flow it shadows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ccbridge.captured import CapturedExchange
from ccbridge.routes import Provider, Route
from ccbridge.routing import shadow
from ccbridge.routing.provider import ProviderClients
from ccbridge.routing.shadow import ShadowCopies, shadow_record
from ccbridge.storage.codec import pack, unpack
from ccbridge.translate import capabilities_for

PROVIDER = Provider(name="mock", base_url="http://127.0.0.1:9/v1", kind="openai-compatible", api_key="k")
ROUTE = Route("mock", "gpt-mock")
CAPABILITIES = capabilities_for("mock", "openai-compatible", "gpt-mock", {})


def columns(text: str) -> dict[str, Any]:
    return {"provider": "mock", "model": "gpt-mock", "api": "chat", "request": {"model": "gpt-mock"},
            "answer": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "raw_response": b'{"id": "c"}\n', "input_tokens": 3, "output_tokens": 2, "cache_read_tokens": 0,
            "cost_usd": None, "ttfb_ms": 1.0, "duration_ms": 2.0, "error": None}


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, list[dict[str, Any]]]:
    """`ask` replaced by one that waits for the event; the bodies it was asked with."""
    release = asyncio.Event()
    asked: list[dict[str, Any]] = []

    async def fake_ask(body: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(body)
        await release.wait()
        return columns(str(body["n"]))

    monkeypatch.setattr(shadow, "ask", fake_ask)
    return release, asked


def send(copies: ShadowCopies, n: int) -> bool:
    return copies.send(f"flow-{n}", {"n": n}, ROUTE, PROVIDER, CAPABILITIES, clients=ProviderClients(), timeout=5)


async def test_beyond_the_limit_copies_are_dropped_and_counted(held: Any, caplog: pytest.LogCaptureFixture) -> None:
    release, asked = held
    stored: list[CapturedExchange] = []
    copies = ShadowCopies(stored.append, limit=2)
    with caplog.at_level(logging.WARNING, "ccbridge.routing"):
        sent = [send(copies, n) for n in range(5)]
    assert sent == [True, True, False, False, False]
    assert (copies.sent, copies.dropped, copies.in_flight) == (2, 3, 2)
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1  # not one line per flow
    await asyncio.sleep(0)
    assert [body["n"] for body in asked] == [0, 1]
    release.set()
    while copies.in_flight:
        await asyncio.sleep(0)
    assert sorted(r.shadow_of() for r in stored) == ["flow-0", "flow-1"]
    assert send(copies, 9)  # room again once the copies in flight are done
    await copies.stop()


async def test_stop_cancels_the_copies_in_flight_without_storing_them(held: Any) -> None:
    stored: list[CapturedExchange] = []
    copies = ShadowCopies(stored.append, limit=4)
    assert send(copies, 1)
    await asyncio.sleep(0)
    await copies.stop()
    assert copies.in_flight == 0 and stored == []


def test_a_shadow_record_round_trips_through_the_journal_codec() -> None:
    record = shadow_record("flow-7", 100.0, columns("hello"), PROVIDER, redact=True)
    again = unpack(pack(record))
    assert again == record
    assert again.shadow_of() == "flow-7"
    assert again.route is not None and again.route["answer"]["content"][0]["text"] == "hello"
    assert again.provider_request == {"model": "gpt-mock"} and again.provider_response == b'{"id": "c"}\n'
    assert again.redact_body_secrets and (again.host, again.port) == ("127.0.0.1", 9)
