"""The hook's cost in the proxy process: `WriterProcess.submit` (encode, append to the journal) per exchange.

Each exchange is what the capture addon hands over for the `make bench` proxy run: the real 2.1.329 request
body (50 KB), its headers and the SSE answer in the chunks it arrived in. The writer process runs meanwhile
and drains the journal into SQLite, as it does in mitmdump. Medians over many exchanges; p90 for the spread
(a busy disk shows there first).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from ccbridge.captured import CapturedExchange
from ccbridge.storage.codec import pack, parts
from ccbridge.storage.process import WriterProcess
from tests.bench.proxy import answer_frames, first_request

Result = tuple[str, float, str]
EXCHANGES = 1000


def bench_exchange(number: int) -> CapturedExchange:
    """One finished exchange as the capture addon records it for the proxy benchmark."""
    request = first_request()
    now = time.time()
    chunks = answer_frames([{"type": "text", "text": "Hello! " * 20}], request["body"]["model"])
    return CapturedExchange(
        flow_id=f"bench-{number:06d}", started_at=now, method="POST", scheme="http", host="127.0.0.1",
        port=8082, path="/v1/messages", query=[("beta", "true")], http_version="HTTP/1.1",
        request_headers=[(k, v) for k, v in request["headers"]], request_body=json.dumps(request["body"]).encode(),
        request_done_at=now, status_code=200,
        response_headers=[("content-type", "text/event-stream"), ("transfer-encoding", "chunked")],
        first_byte_at=now, finished_at=now, response_chunks=chunks, chunk_times=[now] * len(chunks), complete=True)


def microseconds(times: list[float]) -> tuple[float, float]:
    """Median and 90th percentile, in microseconds."""
    ordered = sorted(times)
    return statistics.median(ordered) * 1e6, ordered[len(ordered) * 9 // 10] * 1e6


def run() -> list[Result]:
    exchanges = [bench_exchange(n) for n in range(EXCHANGES)]
    encode: list[float] = []
    submit: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ccbridge-bench-") as tmp:
        writer = WriterProcess(f"sqlite:///{Path(tmp) / 'cc.db'}", Path(tmp) / "journal")
        try:
            for captured in exchanges:
                started = time.perf_counter()
                parts(captured)
                encode.append(time.perf_counter() - started)
                started = time.perf_counter()
                writer.submit(captured)
                submit.append(time.perf_counter() - started)
            assert writer.flush(120), "the writer did not catch up"
        finally:
            writer.close()
        assert writer.written == EXCHANGES and writer.lost == 0, writer.summary()
    size = len(pack(exchanges[0]))
    encode_median, encode_p90 = microseconds(encode)
    submit_median, submit_p90 = microseconds(submit)
    return [
        ("journal record of one exchange", size / 1024, "KiB"),
        ("encode one exchange (codec.parts), median", encode_median, "us"),
        ("  90th percentile", encode_p90, "us"),
        ("hook's cost per exchange (WriterProcess.submit), median", submit_median, "us"),
        ("  90th percentile", submit_p90, "us"),
    ]
