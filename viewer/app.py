"""Build the viewer app: pages, JSON API, static files, authentication and security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

from ccbridge.prices import Rates

from .auth import AuthMiddleware
from .deps import HERE, make_templates
from .views import api, request_page, session_page, sessions

# Captured text is shown, never run: scripts only from our own origin (htmx, viewer.js), no inline code,
# no plugins, nothing fetched from elsewhere. data: images are the captured image blocks.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /docs is Swagger UI, vendored in static/ like htmx; it sets style attributes, so only its page may.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


def create_app(engine: Engine, *, password: str | None = None, token: str | None = None,
               loopback_hosts_only: bool = False, prices: Mapping[str, Rates] | None = None) -> FastAPI:
    """The viewer over `engine`. With a password or token, every route but /health asks for it. `prices`
    (config.yaml's, by provider/model) override genai-prices in the savings report."""
    app = FastAPI(title="ccbridge viewer", summary="Claude Code sessions recorded by ccbridge, as threads",
                  version="0.1.0", docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.templates = make_templates()
    app.state.prices = dict(prices or {})
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (sessions, session_page, request_page, api):
        app.include_router(module.router)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Response:
        """The OpenAPI docs, served from the vendored Swagger UI (nothing fetched from elsewhere)."""
        return request.app.state.templates.TemplateResponse(request, "docs.html")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        docs = request.url.path == "/docs"
        response.headers.setdefault("content-security-policy", DOCS_CSP if docs else CSP)
        response.headers.setdefault("x-content-type-options", "nosniff")
        response.headers.setdefault("referrer-policy", "no-referrer")
        response.headers.setdefault("x-frame-options", "DENY")
        return response

    app.add_middleware(AuthMiddleware, password=password, token=token, loopback_hosts_only=loopback_hosts_only)
    return app
