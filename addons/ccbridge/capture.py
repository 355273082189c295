"""The capture addon: records every exchange while passing every byte through as it arrives.

Hooks copy references out of the flow into a `CapturedExchange` and hand it to the storage writer; they do
no I/O, no decoding and no parsing. Response bodies are streamed to the client chunk by chunk through a tee
that keeps a reference to each chunk (`flow.response.stream`), so SSE events reach Claude Code when the
upstream sends them and the body is still recorded in full, also when the stream breaks off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader

from .captured import CapturedExchange
from .flow_meta import META_CAPTURED, META_PROVIDER_REQUEST, META_PROVIDER_RESPONSE, META_ROUTE, ours
from .read_timeout import ReadWatch

log = logging.getLogger("ccbridge.capture")

META_WATCH = "ccbridge_read_watch"  # the flow's read timer, from the request until the response ends

StreamFn = Callable[[bytes], Iterable[bytes] | bytes]


def error_kind(message: str) -> str:
    """client_abort | upstream_abort | timeout | error, from mitmproxy's error message."""
    text = message.lower()
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "client disconnected" in text or "client closed" in text or text == "killed":
        return "client_abort"
    if any(word in text for word in ("server", "peer closed", "upstream", "incomplete", "connection reset",
                                     "connect", "eof", "protocol error")):
        return "upstream_abort"
    return "error"


def keep_request_body(captured: CapturedExchange, body: bytes | None) -> None:
    """Keep a reference to the request body, or a copy of its first `body_limit` bytes when it is longer."""
    if body is not None and len(body) > captured.body_limit:
        captured.request_truncated = True
        body = body[: captured.body_limit]
    captured.request_body = body


class Tee:
    """The stream callable: passes each chunk on unchanged and keeps it (up to a limit) for the record."""

    __slots__ = ("captured", "inner", "kept", "limit", "watch")

    def __init__(self, captured: CapturedExchange, limit: int, inner: StreamFn | None = None,
                 watch: ReadWatch | None = None) -> None:
        self.captured = captured
        self.limit = limit
        self.kept = 0
        self.inner = inner
        self.watch = watch

    def __call__(self, chunk: bytes) -> Iterable[bytes] | bytes:
        if self.watch is not None:
            self.watch.touch()
        if self.inner is not None:
            return self._through_inner(chunk)
        # the common case, once per chunk of every stream: no type tests, no copy
        if not chunk:
            return []  # b"" before the end would end an HTTP/1.1 body early
        try:
            self._keep(chunk)
        except Exception:
            log.exception("ccbridge: stream tee failed for flow %s", self.captured.flow_id)
        return chunk

    def _through_inner(self, chunk: bytes) -> Iterable[bytes] | bytes:
        """Another addon's stream callable runs first; what it returns is what the client gets and is kept."""
        out: Iterable[bytes] | bytes = chunk
        try:
            out = self.inner(chunk) if self.inner is not None else chunk
            if isinstance(out, bytes | bytearray):
                self._keep(bytes(out))
            else:
                out = list(out)
                for piece in out:
                    self._keep(piece)
        except Exception:
            log.exception("ccbridge: stream tee failed for flow %s", self.captured.flow_id)
            return chunk or []
        if isinstance(out, bytes | bytearray):
            return out if out else []
        return out

    def _keep(self, chunk: bytes) -> None:
        if not chunk:
            return
        captured = self.captured
        captured.chunk_times.append(time.time())
        kept = self.kept + len(chunk)
        if kept > self.limit:
            captured.response_truncated = True
        else:
            self.kept = kept
            captured.response_chunks.append(chunk)


class Recorder(Protocol):
    """Where captures go (the Runtime, or a test double), with what config.yaml's `capture` and `upstream` set."""

    @property
    def capture_hosts(self) -> Collection[str]:
        """The hosts recorded in explicit-proxy mode, lower-case (reverse mode records every host)."""

    @property
    def max_body_bytes(self) -> int:
        """How much of one body is kept; the rest still reaches the client."""

    @property
    def read_timeout_s(self) -> float:
        """Seconds of upstream silence before a flow ends with a timeout error; 0: never."""

    @property
    def redact_body_secrets(self) -> bool:
        """Whether key and token shapes inside bodies are replaced by their fingerprints before storage."""

    def submit(self, captured: CapturedExchange) -> None: ...


class Capture:
    """mitmproxy addon: hand every exchange of the API hosts to the recorder.

    The recorder says what config.yaml sets (`upstream.read_timeout_s`, `capture.redact_body_secrets`); the
    options `ccbridge_read_timeout_s` (0 turns the timeout off) and `ccbridge_redact_body_secrets` override it.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._redact_option = False
        self._timeout_option: float | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option("ccbridge_read_timeout_s", str, "",
                          "Seconds without data from upstream before ccbridge ends a request with a timeout "
                          "error; overrides upstream.read_timeout_s of config.yaml (default 600; 0: no timeout).")
        loader.add_option("ccbridge_redact_body_secrets", bool, False,
                          "Also replace key and token shapes inside request and response bodies with fingerprints "
                          "before storage (as capture.redact_body_secrets).")

    def configure(self, updated: set[str]) -> None:
        if "ccbridge_redact_body_secrets" in updated:
            self._redact_option = ctx.options.ccbridge_redact_body_secrets
        if "ccbridge_read_timeout_s" not in updated:
            return
        text = ctx.options.ccbridge_read_timeout_s.strip()
        if not text:
            self._timeout_option = None
            return
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:  # also NaN
            raise exceptions.OptionsError(f"ccbridge_read_timeout_s: expected seconds (0 or more), got {text!r}")
        self._timeout_option = seconds

    def timeout_s(self) -> float:
        """The read timeout in force: the option if set, else config.yaml's; 0 means none."""
        return self.recorder.read_timeout_s if self._timeout_option is None else self._timeout_option

    def wanted(self, flow: http.HTTPFlow) -> bool:
        """Reverse mode records everything; explicit-proxy mode only the configured API hosts."""
        mode = getattr(flow.client_conn.proxy_mode, "type_name", "regular")
        if mode == "reverse":
            return True
        return flow.request.pretty_host.lower() in self.recorder.capture_hosts

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        try:
            if not self.wanted(flow):
                return
            request = flow.request
            ours(flow)[META_CAPTURED] = CapturedExchange(
                flow_id=flow.id,
                started_at=request.timestamp_start,
                method=request.method,
                scheme=request.scheme,
                host=request.pretty_host,
                port=request.port,
                path=request.path.split("?", 1)[0],
                query=list(request.query.items(multi=True)),
                http_version=request.http_version,
                request_headers=list(request.headers.items(multi=True)),
                request_body=None,
                body_limit=self.recorder.max_body_bytes,
                redact_body_secrets=self.recorder.redact_body_secrets or self._redact_option,
            )
        except Exception:
            log.exception("ccbridge: could not start recording flow %s", flow.id)

    def request(self, flow: http.HTTPFlow) -> None:
        captured: CapturedExchange | None = ours(flow).get(META_CAPTURED)
        if captured is not None:
            keep_request_body(captured, flow.request.raw_content)
            captured.request_done_at = flow.request.timestamp_end
            self._watch(flow)

    def _watch(self, flow: http.HTTPFlow) -> None:
        """Start the read timer; routed flows have their provider's own timeout (routing.timeout)."""
        seconds = self.timeout_s()
        if seconds > 0 and flow.response is None and ours(flow).get(META_ROUTE) is None:
            try:
                ours(flow)[META_WATCH] = ReadWatch(flow, seconds)
            except RuntimeError:  # no running event loop: unit tests calling hooks directly
                return
            except Exception:
                log.exception("ccbridge: no read timeout for flow %s", flow.id)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        captured: CapturedExchange | None = ours(flow).get(META_CAPTURED)
        if captured is None or flow.response is None:
            return
        try:
            response = flow.response
            captured.status_code = response.status_code
            captured.response_headers = list(response.headers.items(multi=True))
            captured.first_byte_at = response.timestamp_start
            inner = response.stream if callable(response.stream) else None
            watch: ReadWatch | None = ours(flow).get(META_WATCH)
            if watch is not None:
                watch.touch()
            response.stream = Tee(captured, captured.body_limit, inner, watch)
        except Exception:
            log.exception("ccbridge: could not stream flow %s", flow.id)

    def response(self, flow: http.HTTPFlow) -> None:
        captured: CapturedExchange | None = ours(flow).pop(META_CAPTURED, None)
        if captured is None:
            return
        try:
            response = flow.response
            assert response is not None
            if captured.response_headers is None:  # headers were changed after responseheaders, or no tee
                captured.response_headers = list(response.headers.items(multi=True))
                captured.status_code = response.status_code
            if not response.stream and response.raw_content:
                body = response.raw_content
                captured.response_truncated = len(body) > captured.body_limit
                captured.response_chunks = [body[: captured.body_limit] if captured.response_truncated else body]
            captured.finished_at = response.timestamp_end or time.time()
            captured.complete = True
            self._finish(flow, captured)
        except Exception:
            log.exception("ccbridge: could not record flow %s", flow.id)

    def error(self, flow: http.HTTPFlow) -> None:
        captured: CapturedExchange | None = ours(flow).pop(META_CAPTURED, None)
        if captured is None:
            return
        try:
            message = flow.error.msg if flow.error else "unknown error"
            if captured.request_body is None and flow.request.raw_content is not None:
                keep_request_body(captured, flow.request.raw_content)
            if flow.response is not None and captured.response_headers is None:
                captured.status_code = flow.response.status_code
                captured.response_headers = list(flow.response.headers.items(multi=True))
            captured.finished_at = time.time()
            captured.error_kind = error_kind(message)
            captured.error_message = message
            self._finish(flow, captured)
        except Exception:
            log.exception("ccbridge: could not record failed flow %s", flow.id)

    def _finish(self, flow: http.HTTPFlow, captured: CapturedExchange) -> None:
        watch: ReadWatch | None = ours(flow).pop(META_WATCH, None)
        if watch is not None:
            watch.cancel()
            if watch.expired:  # the proxy answered in the upstream's place
                captured.complete = False
                captured.error_kind = "timeout"
                captured.error_message = f"no data from upstream for {watch.seconds:g} s (upstream.read_timeout_s)"
        route: Any = ours(flow).get(META_ROUTE)
        if route is not None:
            captured.route = route
            captured.provider_request = ours(flow).get(META_PROVIDER_REQUEST)
            provider_response = ours(flow).get(META_PROVIDER_RESPONSE)
            if provider_response is not None:
                captured.provider_response = bytes(provider_response)
        self.recorder.submit(captured)
