"""The routing addon's hooks on mitmproxy test flows built from the real Claude Code captures."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import gzip
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from ccbridge import identity
from ccbridge.capture import Capture
from ccbridge.captured import CapturedExchange
from ccbridge.flow_meta import (
    META_CAPTURED,
    META_IDENTITY,
    META_PROVIDER_REQUEST,
    META_PROVIDER_RESPONSE,
    META_ROUTE,
    ours,
)
from ccbridge.identity import Identity
from ccbridge.routing.addon import META_TOKEN, Routing
from ccbridge.routing.sidecar import TOKEN_HEADER, Sidecar
from ccbridge.settings import Settings, parse_settings
from ccbridge.sse import parse_events
from tests.fixtures import FIXTURES, VERSIONS, captured_requests
from tests.support.doubles import Recorder, streamed_request
from tests.support.mock_anthropic import message_events, tool_use_block
from tests.support.mock_openai import MockOpenAI, Pause, chunk, closed_port

UPSTREAM = ("api.anthropic.com", 443)
REVIEWER_BODY = "You are a meticulous code reviewer. MARKER-REVIEWER-7f3a"


async def request_hook(addon, flow) -> None:
    """Run the request hook as mitmproxy does: await what it returns, if anything."""
    pending = addon.request(flow)
    if pending is not None:
        await pending


def sync_capture(version: str) -> list[dict[str, Any]]:
    """parent (Agent call), subagent, parent again: the foreground capture of one CLI version."""
    return list(captured_requests(FIXTURES / version / "subagent-sync.jsonl"))


def flow_of(record: dict[str, Any], body: dict[str, Any] | None = None) -> http.HTTPFlow:
    """A flow as mitmproxy has it in the `request` hook of reverse mode: already aimed at the upstream."""
    headers = http.Headers([(k.encode(), v.encode()) for k, v in record["headers"] if k.lower() != "host"])
    content = json.dumps(body if body is not None else record["body"]).encode()
    headers["content-length"] = str(len(content))
    request = tutils.treq(method=record["method"].encode(), scheme=b"https", host=UPSTREAM[0], port=UPSTREAM[1],
                          path=b"/v1/messages?beta=true", headers=headers, content=content)
    return tflow.tflow(req=request)


def answer_with_agent_call(flow: http.HTTPFlow, record: dict[str, Any], *, gzipped: bool = False) -> None:
    """The parent's streamed answer from the capture (its Agent call), as Capture kept it."""
    call = record["mock_response"]["tool_use"]
    body = b"".join(message_events([tool_use_block(call["name"], call["input"], call["id"])]))
    headers = [(b"content-type", b"text/event-stream")]
    if gzipped:
        body, headers = gzip.compress(body), [*headers, (b"content-encoding", b"gzip")]
    flow.response = tutils.tresp(content=None, headers=http.Headers(headers))
    flow.response.stream = True
    captured = CapturedExchange(flow.id, 0, "POST", "https", UPSTREAM[0], UPSTREAM[1], "/v1/messages", [],
                                "HTTP/1.1", [], None)
    captured.response_chunks = [body[:100], body[100:]]
    ours(flow)[META_CAPTURED] = captured


def config(**raw: Any) -> Settings:
    raw.setdefault("providers", {"mockai": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-mock"}})
    raw.setdefault("subagents", {"default_provider": "mockai", "mappings": {"code-reviewer": "gpt-mock"}})
    raw.setdefault("routing", {"agent_dirs": []})
    return parse_settings(raw, env={})


@pytest.fixture
async def routing() -> AsyncIterator[Routing]:
    addon = Routing(SimpleNamespace(config=config()))
    addon.configure(set())
    await addon.running()
    yield addon
    await addon.done()


def assert_routed(flow: http.HTTPFlow, addon: Routing) -> dict[str, Any]:
    assert addon.sidecar is not None
    assert (flow.request.scheme, flow.request.host, flow.request.port) == ("http", "127.0.0.1", addon.sidecar.port)
    assert flow.request.headers[TOKEN_HEADER] == ours(flow)[META_TOKEN]
    assert ours(flow)[META_PROVIDER_REQUEST]["model"] == "gpt-mock"
    assert ours(flow)[META_PROVIDER_RESPONSE] == bytearray()
    return ours(flow)[META_ROUTE]


def assert_untouched(flow: http.HTTPFlow) -> None:
    assert (flow.request.scheme, flow.request.host, flow.request.port) == ("https", *UPSTREAM)
    assert TOKEN_HEADER not in flow.request.headers
    assert META_ROUTE not in ours(flow) and META_TOKEN not in ours(flow)


@pytest.mark.parametrize("version", VERSIONS)
async def test_subagent_is_routed_by_the_parents_agent_call(version: str, routing: Routing) -> None:
    parent, sub, follow_up = sync_capture(version)[-3:]
    parent_flow = flow_of(parent)
    await request_hook(routing, parent_flow)
    assert_untouched(parent_flow)
    answer_with_agent_call(parent_flow, parent, gzipped=version == "2.1.197")
    routing.response(parent_flow)

    sub_flow = flow_of(sub)
    await request_hook(routing, sub_flow)
    route = assert_routed(sub_flow, routing)
    assert route["rule"] == "agent_call" and route["agent"] == "code-reviewer"
    assert route["agent_id"] == sub_flow.request.headers["x-claude-code-agent-id"]
    assert route["requested_model"] == sub["body"]["model"] and route["model"] == "gpt-mock"
    assert route["provider"] == "mockai" and route["fell_back"] is False

    follow_flow = flow_of(follow_up)
    await request_hook(routing, follow_flow)
    assert_untouched(follow_flow)


async def test_subagent_is_routed_by_its_system_prompt(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "code-reviewer.md").write_text(f"---\nname: code-reviewer\ntools: Read\n---\n\n{REVIEWER_BODY}\n")
    addon = Routing(SimpleNamespace(config=config(routing={"agent_dirs": [str(agents)]})))
    addon.configure(set())
    await addon.running()
    try:
        flow = flow_of(sync_capture("2.1.329")[1])  # no parent seen: only rule 2 can tell
        await request_hook(addon, flow)
        route = assert_routed(flow, addon)
        assert route["rule"] == "system_prompt" and route["agent"] == "code-reviewer"
    finally:
        await addon.done()


async def test_a_later_turn_of_the_same_subagent_is_routed_like_its_first(routing: Routing) -> None:
    parent, sub = sync_capture("2.1.329")[:2]
    parent_flow = flow_of(parent)
    answer_with_agent_call(parent_flow, parent)
    routing.response(parent_flow)
    first = flow_of(sub)
    await request_hook(routing, first)
    assert assert_routed(first, routing)["rule"] == "agent_call"

    # Its tool loop continues; even with the delegated prompt no longer first (say, after compaction),
    # the agent id alone routes it, by the rule that recognised it first.
    later = copy.deepcopy(sub["body"])
    later["messages"][0] = {"role": "user", "content": "[earlier conversation summarised]"}
    later["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                           "input": {"file_path": "/home/dev/hello.py"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "print(1)"}]},
    ]
    second = flow_of(sub, later)
    await request_hook(routing, second)
    route = assert_routed(second, routing)
    assert route["rule"] == "agent_call" and route["agent"] == "code-reviewer"
    tool_messages = [m for m in ours(second)[META_PROVIDER_REQUEST]["messages"] if m["role"] == "tool"]
    assert tool_messages and tool_messages[0]["tool_call_id"] == "toolu_1"

    stranger = flow_of(sub, later)  # the same request from another, never seen agent
    stranger.request.headers["x-claude-code-agent-id"] = "a0000000000000000"
    await request_hook(routing, stranger)
    assert_untouched(stranger)


async def test_route_by_requested_model() -> None:
    raw_models = {"claude-opus-*": {"provider": "mockai", "model": "gpt-mock", "fallback": "anthropic"}}
    addon = Routing(SimpleNamespace(config=config(models=raw_models, subagents={"default_provider": "mockai"})))
    addon.configure(set())
    await addon.running()
    try:
        flow = flow_of(sync_capture("2.1.329")[0])  # the main thread
        await request_hook(addon, flow)
        route = assert_routed(flow, addon)
        assert route["rule"] == "model" and route["agent"] is None and route["fallback"] == "anthropic"
        count = flow_of(sync_capture("2.1.329")[0])
        count.request.path = "/v1/messages/count_tokens?beta=true"
        await request_hook(addon, count)
        # a count for a routed model is answered here: it never reaches Anthropic, nor the sidecar
        assert count.response is not None and count.response.status_code == 200
        assert json.loads(count.response.content or b"")["input_tokens"] > 0
        assert (count.request.host, count.request.port) == UPSTREAM and META_TOKEN not in ours(count)
    finally:
        await addon.done()


async def test_count_tokens_for_a_routed_subagent_is_answered_locally(routing: Routing) -> None:
    parent, sub = sync_capture("2.1.329")[:2]
    parent_flow = flow_of(parent)
    await request_hook(routing, parent_flow)
    answer_with_agent_call(parent_flow, parent)
    routing.response(parent_flow)
    count = flow_of(sub, {k: v for k, v in sub["body"].items() if k not in ("stream", "max_tokens")})
    count.request.path = "/v1/messages/count_tokens?beta=true"
    await request_hook(routing, count)
    assert count.response is not None and count.response.status_code == 200
    assert count.response.headers["content-type"] == "application/json"
    assert json.loads(count.response.content or b"")["input_tokens"] > 100  # a subagent prompt is not tiny
    assert ours(count)[META_ROUTE]["agent"] == "code-reviewer"
    assert (count.request.host, count.request.port) == UPSTREAM and TOKEN_HEADER not in count.request.headers


async def test_the_routing_server_listens_on_routing_listen_port() -> None:
    port = closed_port()
    addon = Routing(SimpleNamespace(config=config(routing={"agent_dirs": [], "listen_port": port})))
    addon.configure(set())
    await addon.running()
    try:
        assert addon.sidecar is not None and addon.sidecar.port == port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 404")  # the routing server itself: no routed request has that token
        writer.close()
    finally:
        await addon.done()


async def test_nothing_is_routed_until_routing_is_enabled() -> None:
    addon = Routing(SimpleNamespace(config=parse_settings({}, env={})))
    addon.configure(set())
    await addon.running()
    assert addon.sidecar is None
    flow = flow_of(sync_capture("2.1.329")[1])
    await request_hook(addon, flow)
    assert_untouched(flow)
    await addon.done()


async def test_an_unmapped_subagent_goes_to_anthropic(routing: Routing) -> None:
    parent, sub = sync_capture("2.1.329")[:2]
    record = copy.deepcopy(parent)
    record["mock_response"]["tool_use"]["input"]["subagent_type"] = "doc-writer"
    parent_flow = flow_of(parent)
    answer_with_agent_call(parent_flow, record)
    routing.response(parent_flow)
    flow = flow_of(sub)
    await request_hook(routing, flow)
    assert_untouched(flow)
    assert routing.memory.agent(flow.request.headers["x-claude-code-agent-id"]).name == "doc-writer"




async def test_capture_records_what_claude_code_sent(routing: Routing) -> None:
    """Routing runs before Capture in the chain; the record still shows the original request."""
    capture = Capture(Recorder())
    parent, sub = sync_capture("2.1.329")[:2]
    parent_flow = flow_of(parent)
    answer_with_agent_call(parent_flow, parent)
    routing.response(parent_flow)

    flow = flow_of(sub)
    original_headers = list(flow.request.headers.items(multi=True))
    original_body = flow.request.raw_content
    capture.requestheaders(flow)
    await request_hook(routing, flow)
    capture.request(flow)
    assert_routed(flow, routing)
    captured: CapturedExchange = ours(flow)[META_CAPTURED]
    assert (captured.scheme, captured.host, captured.port, captured.path) == ("https", *UPSTREAM, "/v1/messages")
    assert captured.request_headers == original_headers
    assert captured.request_body == original_body


async def test_our_failure_leaves_the_flow_to_anthropic(routing: Routing, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("translator bug")

    monkeypatch.setattr("ccbridge.routing.addon.provider_request", broken)
    parent, sub = sync_capture("2.1.329")[:2]
    parent_flow = flow_of(parent)
    answer_with_agent_call(parent_flow, parent)
    routing.response(parent_flow)
    flow = flow_of(sub)
    with caplog.at_level(logging.ERROR, logger="ccbridge.routing"):
        await request_hook(routing, flow)
    assert_untouched(flow)
    assert [r.message for r in caplog.records if "goes to Anthropic unchanged" in r.message]


async def test_a_failed_flow_is_forgotten_by_the_sidecar(routing: Routing) -> None:
    routing.runtime.config = config(models={"claude-*": "gpt-mock"}, routing={"agent_dirs": [], "timeout": 30})
    routing.configure(set())  # new settings while running: the same server carries on
    assert routing.sidecar is not None and routing.sidecar.timeout == 30
    flow = flow_of(sync_capture("2.1.329")[0])
    await request_hook(routing, flow)
    assert routing.sidecar is not None
    token = ours(flow)[META_TOKEN]
    assert token in routing.sidecar._pending
    flow.error = None
    routing.error(flow)
    assert token not in routing.sidecar._pending


async def test_the_sidecar_answers_an_unknown_token_with_an_anthropic_error(routing: Routing) -> None:
    assert routing.sidecar is not None
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{routing.sidecar.port}/v1/messages",
                                     headers={TOKEN_HEADER: "guessed"}, content=b"{}")
    assert response.status_code == 404
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "not_found_error"


async def test_the_sidecar_ends_a_stream_that_outlives_the_timeout() -> None:
    """A provider that keeps sending past `routing.timeout` gets cut off with a `timeout_error` event."""
    settings = config(routing={"agent_dirs": [], "timeout": 1.0, "ping_interval": 0.2}).routing
    with MockOpenAI() as provider:
        provider.script = [chunk({"role": "assistant", "content": ""})]
        provider.script += [item for _ in range(40) for item in (Pause(0.1), chunk({"content": "."}))]
        provider.script.append(chunk(finish_reason="stop"))
        providers = dict(settings.providers)
        providers["mockai"] = dataclasses.replace(providers["mockai"], base_url=provider.base_url)
        route = settings.agents["code-reviewer"]
        body = {"model": "claude-x", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        routed = streamed_request(route, providers["mockai"], body)
        sidecar = Sidecar(ping_interval=settings.ping_interval, timeout=settings.timeout)
        await sidecar.start()
        try:
            token = sidecar.register(routed)
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(f"http://127.0.0.1:{sidecar.port}/v1/messages",
                                             headers={TOKEN_HEADER: token}, content=routed.raw_body)
        finally:
            await sidecar.stop()
    events = [e.event for e in parse_events(response.content)]
    assert events[0] == "message_start" and events[-1] == "error"
    assert parse_events(response.content)[-1].json()["error"]["type"] == "timeout_error"
    assert routed.info["error"] == "timeout"
    assert 3 < len(routed.provider_response.splitlines()) < 15  # chunks kept coming until the deadline


# --- who sent a request is worked out once per flow ---------------------------------------------------


@pytest.fixture
def identified(monkeypatch: pytest.MonkeyPatch) -> list[Identity]:
    """What every call of `identify` returned, from whichever ccbridge module it was made."""
    calls: list[Identity] = []
    original = identity.identify

    def counting(headers: Any, body: Any) -> Identity:
        calls.append(original(headers, body))
        return calls[-1]

    for name, module in list(sys.modules.items()):
        if name.startswith("ccbridge") and getattr(module, "identify", None) is original:
            monkeypatch.setattr(module, "identify", counting)
    return calls


async def test_a_routed_subagent_flow_is_identified_once(routing: Routing, identified: list[Identity]) -> None:
    recorder = Recorder()
    capture = Capture(recorder)
    parent, sub = sync_capture("2.1.329")[:2]
    with taddons.context(routing, capture):
        parent_flow = flow_of(parent)
        answer_with_agent_call(parent_flow, parent)
        routing.response(parent_flow)  # learns the Agent call: needs the parent's session

        flow = flow_of(sub)
        capture.requestheaders(flow)
        await request_hook(routing, flow)  # decides, recognises the agent, translates
        capture.request(flow)
        assert assert_routed(flow, routing)["agent"] == "code-reviewer"
        flow.response = tutils.tresp(content=b"{}")
        capture.responseheaders(flow)
        routing.response(flow)
        capture.response(flow)
    agent_id = flow.request.headers["x-claude-code-agent-id"]
    assert [(who.agent_id, who.is_subagent) for who in identified] == [(None, False), (agent_id, True)]
    assert ours(parent_flow)[META_IDENTITY] is identified[0] and ours(flow)[META_IDENTITY] is identified[1]
    assert recorder.records[0].route["agent_id"] == agent_id


async def test_a_flow_kept_from_routing_is_identified_once(identified: list[Identity]) -> None:
    """With model routes every Messages request is looked at; learning from its answer reuses the identity."""
    addon = Routing(SimpleNamespace(config=config(models={"claude-haiku-*": "gpt-mock"})))
    addon.configure(set())
    await addon.running()
    try:
        parent = sync_capture("2.1.329")[0]
        with taddons.context(addon):
            flow = flow_of(parent)
            await request_hook(addon, flow)
            assert_untouched(flow)
            answer_with_agent_call(flow, parent)
            addon.response(flow)
        assert len(identified) == 1 and identified[0].session_id is not None
        assert addon.memory.calls(identified[0].session_id)  # the session the answer's call was learnt for
    finally:
        await addon.done()


# --- shadow routes ------------------------------------------------------------------------------------


def shadowing_addon(providers: dict[str, Any], submitted: list[CapturedExchange]) -> Routing:
    settings = config(providers=providers, subagents={"shadow": {"code-reviewer": "mockai/gpt-mock"}})
    addon = Routing(SimpleNamespace(config=settings, submit=submitted.append))
    addon.configure(set())
    return addon


async def delegate_to_the_reviewer(addon: Routing) -> tuple[http.HTTPFlow, bytes]:
    """The parent's Agent call, then the subagent's request; the subagent flow and its body before the hook."""
    parent, sub, _ = sync_capture(VERSIONS[-1])[-3:]
    parent_flow = flow_of(parent)
    await request_hook(addon, parent_flow)
    answer_with_agent_call(parent_flow, parent)
    addon.response(parent_flow)
    sub_flow = flow_of(sub)
    before = sub_flow.request.raw_content or b""
    await request_hook(addon, sub_flow)
    return sub_flow, before


async def test_a_shadowed_subagent_stays_on_claude_and_a_copy_goes_to_the_shadow_route() -> None:
    submitted: list[CapturedExchange] = []
    with MockOpenAI() as provider:
        addon = shadowing_addon({"mockai": {"base_url": provider.base_url, "api_key": "sk-mock"}}, submitted)
        await addon.running()
        try:
            sub_flow, before = await delegate_to_the_reviewer(addon)
            assert_untouched(sub_flow)
            assert sub_flow.request.raw_content == before
            assert addon.shadows.sent == 1
            async with asyncio.timeout(20):
                while addon.shadows.in_flight:
                    await asyncio.sleep(0.01)
        finally:
            await addon.done()
        [copy_sent] = provider.chat_requests
    assert copy_sent["model"] == "gpt-mock"
    [record] = submitted
    assert record.shadow_of() == sub_flow.id
    assert record.route is not None and record.route["error"] is None
    assert record.route["answer"]["content"][0]["text"] == "Hello from the mock OpenAI server."


async def test_a_shadow_whose_provider_has_no_key_is_never_sent() -> None:
    submitted: list[CapturedExchange] = []
    with MockOpenAI() as provider:
        addon = shadowing_addon({"mockai": {"base_url": provider.base_url, "api_key_env": "UNSET_MOCK_KEY"}},
                                submitted)
        await addon.running()
        try:
            sub_flow, _ = await delegate_to_the_reviewer(addon)
            assert_untouched(sub_flow)
        finally:
            await addon.done()
        assert provider.requests == []
    assert addon.shadows.sent == 0 and submitted == []
