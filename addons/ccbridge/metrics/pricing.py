"""Pricing answers on a thread of its own: genai-prices takes about 0.6 ms per answer, too long for a hook.

The hook only queues the tokens (bounded: when the thread falls that far behind, an answer is counted as
unpriced rather than held). The thread yields the interpreter after each answer, so the event loop waits
for at most one price, never a batch.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..prices import ANTHROPIC, Tokens, cost_usd

log = logging.getLogger("ccbridge.metrics")
QUEUE_LIMIT = 10_000


@dataclass(frozen=True)
class Priced:
    """One answer to price: its metric labels and what answered it."""

    labels: tuple[str, ...]
    provider: str  # a provider name of config.yaml, or anthropic
    model: str | None
    kind: str | None  # the provider's kind (how genai-prices names it), when routed
    tokens: Tokens


def priced(labels: tuple[str, ...], route: Any, model: str | None, tokens: Tokens) -> Priced:
    """What to price: the route's provider and model when a provider answered, else Anthropic's `model`."""
    if isinstance(route, Mapping) and route.get("provider"):
        return Priced(labels, str(route["provider"]), route.get("model") or model, route.get("kind"), tokens)
    return Priced(labels, ANTHROPIC, model, None, tokens)


class Pricer:
    """`submit` from hooks; `record(labels, usd)` is called on the thread (usd None: no price known)."""

    def __init__(self, record: Callable[[tuple[str, ...], float | None], None],
                 prices: Callable[[], Mapping[str, Any]], limit: int = QUEUE_LIMIT) -> None:
        self.record = record
        self.prices = prices  # config.yaml's `prices:`, read when each answer is priced
        self._queue: queue.Queue[Priced | None] = queue.Queue(limit)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ccbridge-metrics-pricing", daemon=True)
        self._thread.start()

    def submit(self, item: Priced) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.record(item.labels, None)

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is priced (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self) -> None:
        """Stop after the answer being priced; what is still queued is dropped with the process."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(5)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None and not self._stopping.is_set():
            try:
                usd = cost_usd(item.provider, item.model, item.tokens, prices=self.prices(), kind=item.kind)
                self.record(item.labels, None if usd is None else float(usd))
            except Exception:
                log.exception("ccbridge: could not price an answer for the metrics")
            finally:
                self._queue.task_done()
            time.sleep(0)  # let the event loop run between two prices
        self._queue.task_done()
