"""The sidecar answering a routed request over a real loopback connection, with the mock provider."""

from __future__ import annotations

import asyncio
import dataclasses

from ccbridge.routing.sidecar import TOKEN_HEADER, Sidecar
from ccbridge.settings import parse_settings
from tests.support.doubles import streamed_request
from tests.support.mock_openai import MockOpenAI, Stall, chunk

GUARD = 10.0  # seconds: only so that a broken sidecar fails the test instead of hanging it


async def test_a_client_leaving_mid_answer_cancels_the_provider_request() -> None:
    settings = parse_settings({
        "providers": {"mockai": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-mock"}},
        "subagents": {"default_provider": "mockai", "mappings": {"code-reviewer": "gpt-mock"}},
        "routing": {"agent_dirs": []},
    }, env={}).routing
    with MockOpenAI() as provider:
        provider.script = [chunk({"role": "assistant", "content": ""}), Stall(20)]
        mockai = dataclasses.replace(settings.providers["mockai"], base_url=provider.base_url)
        body = {"model": "claude-x", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        routed = streamed_request(settings.agents["code-reviewer"], mockai, body)
        sidecar = Sidecar(ping_interval=settings.ping_interval, timeout=settings.timeout)
        await sidecar.start()
        try:
            token = sidecar.register(routed)
            reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
            writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n%b: %b\r\ncontent-length: %d\r\n\r\n%b" % (
                TOKEN_HEADER.encode(), token.encode(), len(routed.raw_body), routed.raw_body))
            async with asyncio.timeout(GUARD):
                await reader.readuntil(b"event: message_start")
            writer.close()
            async with asyncio.timeout(GUARD):
                while not (provider.exchanges and provider.exchanges[0].aborted):
                    await asyncio.sleep(0.02)
        finally:
            await sidecar.stop()
    assert routed.info["client_disconnected"] is True
    assert "stop_reason" not in routed.info  # the answer did not run to its end
