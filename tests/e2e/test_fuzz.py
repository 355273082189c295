"""Fuzz: 10,000 seeded exchanges, built from the real Claude Code requests and from malformed SSE, JSON and
gzip, through a real mitmdump in front of a mock upstream that replays the generated answers. The proxy does
not crash, the client gets every byte the upstream sent (and the upstream every byte the client sent), and
every exchange is recorded.

CCBRIDGE_FUZZ_SEED and CCBRIDGE_FUZZ_COUNT change the run (the seed is printed, so a failure can be replayed).
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.fuzz import CASE_HEADER, FuzzCase, cases
from tests.support.mock_anthropic import MockAnthropic, MockRequest, Reply, error_reply
from tests.support.proxy import start_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

SEED = int(os.environ.get("CCBRIDGE_FUZZ_SEED", "20260808"))
COUNT = int(os.environ.get("CCBRIDGE_FUZZ_COUNT", "10000"))
CLIENTS = 8
SEND_LIMIT = 420.0  # seconds for all exchanges to pass (about 90 s on 2 idle cores)
STORE_LIMIT = 300.0  # and for the writer to catch up after that
CLOSING = re.compile(r"ccbridge: (\d+) exchanges recorded, (\d+) failed, (\d+) pending in the journal")


@dataclass
class Outcome:
    case: FuzzCase
    status: int
    request_id: str
    raw_sha256: str  # the response body as it reached the client, not decoded


def send(url: str, todo: list[FuzzCase], deadline: float) -> tuple[list[Outcome], list[str]]:
    """Every case through the proxy from CLIENTS threads, each on its own keep-alive connection."""
    work: queue.Queue[FuzzCase] = queue.Queue()
    for case in todo:
        work.put(case)
    outcomes: list[Outcome] = []
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < deadline:
                try:
                    case = work.get_nowait()
                except queue.Empty:
                    return
                headers = [*case.headers, (CASE_HEADER, str(case.number).encode())]
                content: bytes | Iterator[bytes] = iter(case.body_chunks) if case.body_chunks else case.body
                try:
                    with http.stream(case.method, case.target, content=content, headers=headers) as r:
                        digest = hashlib.sha256()
                        for chunk in r.iter_raw():
                            digest.update(chunk)
                    outcomes.append(Outcome(case, r.status_code, r.headers.get("request-id", ""), digest.hexdigest()))
                except httpx.HTTPError as exc:
                    failures.append(f"case {case.number} ({case.kind}): {exc!r}")

    threads = [threading.Thread(target=client, name=f"fuzz-client-{n}") for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic() + 60))
    return outcomes, failures




def test_fuzzed_exchanges_pass_unaltered_and_are_all_recorded(tmp_path: Path):
    todo = list(cases(SEED, COUNT))
    replies = {str(case.number): case.reply for case in todo}

    def answer(request: MockRequest) -> Reply:
        reply = replies.get(request.header(CASE_HEADER) or "")
        return reply if reply is not None else error_reply(500, "api_error", "no such fuzz case")

    with MockAnthropic(answer, keep_bodies=False) as mock, start_proxy(mock.url, tmp_path) as proxy:
        started = time.monotonic()
        outcomes, failures = send(proxy.url, todo, started + SEND_LIMIT)
        passed = time.monotonic() - started
        deadline = time.monotonic() + STORE_LIMIT
        while proxy.stored_count() < len(todo) and time.monotonic() < deadline and proxy.popen.poll() is None:
            time.sleep(0.5)
        recorded = proxy.stored_count()
        stored_after = time.monotonic() - started
        alive = proxy.popen.poll() is None
        assert proxy.stop(timeout=15) == 0
    log = proxy.log()

    upstream = {e.request_id: e for e in mock.exchanges}
    altered = [o for o in outcomes
               if o.request_id not in upstream or o.raw_sha256 != upstream[o.request_id].response_sha256]
    sent_altered = [o for o in outcomes if o.request_id in upstream
                    and hashlib.sha256(o.case.body).hexdigest() != upstream[o.request_id].request.sha256]
    wrong_status = [o for o in outcomes if o.request_id in upstream and o.status != upstream[o.request_id].status]
    kinds = Counter(case.kind.split(" -> ")[-1].split("/")[0] for case in todo)
    print(f"fuzz seed {SEED}: {len(todo)} exchanges ({len(kinds)} kinds of answer) passed in {passed:.0f} s "
          f"({len(todo) / passed:.0f}/s), {recorded} recorded after {stored_after:.0f} s; "
          f"{len(failures)} client errors, {len(altered)} altered answers, {len(sent_altered)} altered requests, "
          f"mitmdump alive: {alive}")

    assert alive and "Traceback" not in log, proxy.log_tail()
    assert failures == [], failures[:5]
    assert len(outcomes) == len(todo)
    assert altered == [] and sent_altered == [] and wrong_status == [], (altered[:3], sent_altered[:3])
    assert recorded == len(todo)
    closing = CLOSING.findall(log)
    assert closing and closing[-1] == (str(len(todo)), "0", "0"), closing
    assert "storage writer process stopped" not in log
