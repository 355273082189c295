"""Viewer fixtures: a capture database filled by the real Writer, and a TestClient on the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from ccbridge.storage.db import open_engine
from tests.fixtures import fixture_files
from tests.support.builders import fixture_captures, write
from viewer.app import create_app


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'cc.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def fixture_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Every fixture file of both CLI versions, stored as the proxy stores it (read-only for tests)."""
    engine = open_engine(f"sqlite:///{tmp_path_factory.mktemp('fixtures') / 'cc.db'}")
    write(engine, [c for path in fixture_files() for c in fixture_captures(path)])
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def fixture_client(fixture_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(fixture_engine)) as client:
        yield client


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as client:
        yield client
