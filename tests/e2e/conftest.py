"""End-to-end fixtures shared by the routing tests; each module provides its own `routed` proxy."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tests.support.proxy import ProxyProcess
from tests.support.routed import sdk


@pytest.fixture
def client(routed: ProxyProcess) -> Iterator[anthropic.Anthropic]:
    with sdk(routed.url) as client:
        yield client
