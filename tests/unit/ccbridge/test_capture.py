"""The capture hooks on mitmproxy test flows: chunks pass through unchanged, records are complete."""


import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow, tutils

from ccbridge.capture import Capture, Tee, error_kind
from ccbridge.captured import CapturedExchange
from ccbridge.flow_meta import META_CAPTURED, ours
from tests.support.doubles import Recorder


def sse_flow():
    flow = tflow.tflow(req=tutils.treq(method=b"POST", host="api.anthropic.com", path=b"/v1/messages?beta=true",
                                       content=b'{"a":1}'))
    flow.request.headers["x-api-key"] = "sk-ant-secret-key-123456789"
    return flow


def stream_through(addon, flow, chunks):
    addon.requestheaders(flow)
    addon.request(flow)
    flow.response = tutils.tresp(content=None, headers=[(b"content-type", b"text/event-stream")])
    addon.responseheaders(flow)
    out = []
    for chunk in [*chunks, b""]:
        got = flow.response.stream(chunk)
        out.append(got if isinstance(got, bytes) else b"".join(got))
    return out


def test_chunks_pass_through_unchanged_and_are_kept():
    recorder = Recorder()
    addon = Capture(recorder)
    flow = sse_flow()
    with taddons.context(addon):
        chunks = [b"event: a\n", b"data: {\"x\"", b": 1}\n\n", b": comment\n\n"]
        out = stream_through(addon, flow, chunks)
        assert out[:-1] == chunks
        addon.response(flow)
    [record] = recorder.records
    assert record.complete and record.response_chunks == chunks and len(record.chunk_times) == 4
    assert record.request_body == b'{"a":1}' and record.path == "/v1/messages" and record.query == [("beta", "true")]


def test_empty_chunk_mid_stream_never_ends_the_body():
    tee = Tee(CapturedExchange("f", 0, "GET", "http", "h", 1, "/", [], "HTTP/1.1", [], None), 10)
    assert tee(b"") == []
    assert tee(b"abc") == b"abc"


def test_inner_stream_function_is_composed_and_its_output_recorded():
    captured = CapturedExchange("f", 0, "GET", "http", "h", 1, "/", [], "HTTP/1.1", [], None)
    tee = Tee(captured, 100, inner=lambda chunk: [chunk.upper(), b"!"] if chunk else [])
    assert list(tee(b"ab")) == [b"AB", b"!"]
    assert captured.response_chunks == [b"AB", b"!"]


def test_tee_failure_passes_the_chunk_on():
    captured = CapturedExchange("f", 0, "GET", "http", "h", 1, "/", [], "HTTP/1.1", [], None)

    def broken(chunk):
        raise RuntimeError("boom")

    assert Tee(captured, 100, inner=broken)(b"data") == b"data"


def test_body_over_the_limit_is_passed_on_but_marked_truncated():
    captured = CapturedExchange("f", 0, "GET", "http", "h", 1, "/", [], "HTTP/1.1", [], None)
    tee = Tee(captured, 5)
    assert tee(b"1234") == b"1234" and tee(b"5678") == b"5678"
    assert captured.response_chunks == [b"1234"] and captured.response_truncated



def test_the_tee_keeps_each_chunk_it_passes_on_as_is_with_its_arrival_time():
    captured = CapturedExchange("f", 0, "GET", "http", "h", 1, "/", [], "HTTP/1.1", [], None)
    tee = Tee(captured, 1000)
    chunk = b"data: " + b"x" * 100
    assert tee(chunk) is chunk
    assert captured.response_chunks[0] is chunk  # a reference: nothing is copied on the event loop
    assert len(captured.chunk_times) == 1 and captured.chunk_times[0] > 0

def test_error_records_what_arrived():
    recorder = Recorder()
    addon = Capture(recorder)
    flow = sse_flow()
    with taddons.context(addon):
        stream_through(addon, flow, [b"event: message_start\n"])[:-1]
        flow.error = tflow.flow.Error("Client disconnected.")
        addon.error(flow)
    [record] = recorder.records
    assert record.error_kind == "client_abort" and not record.complete
    assert record.response_chunks == [b"event: message_start\n"]


def test_explicit_proxy_mode_records_only_api_hosts():
    recorder = Recorder(capture_hosts=("api.anthropic.com",))
    addon = Capture(recorder)
    with taddons.context(addon):
        other = tflow.tflow(req=tutils.treq(host="statsig.anthropic.com"))
        addon.requestheaders(other)
        api = tflow.tflow(req=tutils.treq(host="api.anthropic.com"))
        addon.requestheaders(api)
    assert META_CAPTURED not in ours(other)
    assert META_CAPTURED in ours(api)


@pytest.mark.parametrize("message,kind", [
    ("Client disconnected.", "client_abort"),
    ("peer closed connection without sending complete message body: incomplete chunked read", "upstream_abort"),
    ("Server disconnected.", "upstream_abort"),
    ("Connection timed out", "timeout"),
    ("something else", "error"),
])
def test_error_kinds(message, kind):
    assert error_kind(message) == kind


def test_request_body_over_the_limit_is_passed_on_but_kept_only_up_to_it():
    recorder = Recorder(max_body_bytes=1024)
    addon = Capture(recorder)
    body = b"x" * 5000
    flow = tflow.tflow(req=tutils.treq(method=b"POST", host="api.anthropic.com", path=b"/v1/messages",
                                       content=body), resp=tutils.tresp(content=b"y" * 3000))
    with taddons.context(addon):
        addon.requestheaders(flow)
        addon.request(flow)
        addon.response(flow)  # no tee: the whole response was buffered
    [record] = recorder.records
    assert flow.request.raw_content == body  # what goes upstream is untouched
    assert record.request_body == body[:1024] and record.request_truncated
    assert record.response_chunks == [b"y" * 1024] and record.response_truncated


def test_read_timeout_option_overrides_the_configured_value_and_is_validated():
    addon = Capture(Recorder(read_timeout_s=600))
    with taddons.context(addon) as tctx:
        assert addon.timeout_s() == 600
        tctx.configure(addon, ccbridge_read_timeout_s="1.5")
        assert addon.timeout_s() == 1.5
        tctx.configure(addon, ccbridge_read_timeout_s="0")
        assert addon.timeout_s() == 0  # off
        with pytest.raises(exceptions.OptionsError, match="ccbridge_read_timeout_s"):
            tctx.configure(addon, ccbridge_read_timeout_s="soon")
