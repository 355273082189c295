"""Authentication: a non-loopback bind needs a password or token; with one, every route but /health is 401."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.routing import Mount, Route

from viewer.app import create_app
from viewer.auth import credentials_ok, is_loopback

REPO = Path(__file__).resolve().parents[3]


def run_viewer(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CCBRIDGE_")}
    return subprocess.run([sys.executable, "-m", "viewer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30, env={**clean, "PYTHONPATH": str(REPO), **(env or {})}, check=False)


def test_non_loopback_bind_without_password_fails_clearly(tmp_path: Path) -> None:
    result = run_viewer("--host", "0.0.0.0", "--port", "0", "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0" in result.stderr and "--password" in result.stderr
    assert not (tmp_path / "x.db").exists(), "it stops before touching the database"


def test_non_loopback_bind_from_config_without_password_fails(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("viewer:\n  host: 192.0.2.10\n")
    result = run_viewer("--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode != 0 and "refusing to listen on 192.0.2.10" in result.stderr


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "example.com", "::"))


def all_routes(routes: list) -> list:  # type: ignore[type-arg]
    """Routes of the app, with those of included routers (FastAPI keeps those nested)."""
    out = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        out += all_routes(nested.routes) if nested is not None else [route]
    return out


def every_path(app) -> list[str]:  # type: ignore[no-untyped-def]
    paths = []
    for route in all_routes(app.routes):
        if isinstance(route, Mount):
            paths.append(route.path + "/htmx-2.0.11.min.js")
        elif isinstance(route, Route):
            paths.append(route.path.replace("{session_id}", "s").replace("{exchange_id}", "1"))
    return paths


@pytest.mark.parametrize("settings", [{"password": "pw"}, {"token": "tok"}, {"password": "pw", "token": "tok"}])
def test_every_route_but_health_needs_credentials(engine: Engine, settings: dict[str, str]) -> None:
    app = create_app(engine, **settings)
    client = TestClient(app)
    paths = every_path(app)
    assert {"/", "/docs", "/openapi.json", "/api/sessions", "/health"} <= set(paths)
    for path in paths:
        response = client.get(path)
        if path == "/health":
            assert response.status_code == 200
        else:
            assert response.status_code == 401, path
            assert "www-authenticate" in response.headers
    good = {"Authorization": f"Bearer {settings['token']}"} if "token" in settings else \
        {"Authorization": "Basic " + base64.b64encode(b"me:pw").decode()}
    assert client.get("/api/sessions", headers=good).status_code == 200
    assert client.get("/api/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/sessions", headers={"Authorization": "Basic " + base64.b64encode(b"me:no").decode()}
                      ).status_code == 401


def test_credentials_parsing() -> None:
    assert credentials_ok("Basic " + base64.b64encode(b"x:pw").decode(), "pw", None)
    assert not credentials_ok("Basic !!!", "pw", None)
    assert not credentials_ok("Bearer pw", "pw", None)  # a password is not a token
    assert not credentials_ok(None, "pw", "tok")


def test_loopback_only_host_header(engine: Engine) -> None:
    client = TestClient(create_app(engine, loopback_hosts_only=True), base_url="http://127.0.0.1:8083")
    assert client.get("/api/sessions").status_code == 200
    assert client.get("/api/sessions", headers={"host": "evil.example:8083"}).status_code == 421
    assert client.get("/health", headers={"host": "evil.example"}).status_code == 200


def test_no_route_changes_captures(engine: Engine) -> None:
    app = create_app(engine)
    routes = [r for r in all_routes(app.routes) if isinstance(r, Route)]
    assert len(routes) > 10
    assert {m for r in routes for m in (r.methods or ())} <= {"GET", "HEAD"}
