"""FastAPI dependencies: a read session on the capture database, the templates, the configured prices."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ccbridge import claude_code
from ccbridge.prices import Rates

from . import costs, render
from .messages import split_reminders

HERE = Path(__file__).resolve().parent
HTMX_JS = "htmx-2.0.11.min.js"
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")


def image_ok(source: dict[str, Any]) -> bool:
    """A captured base64 image we may show inline: a known raster type and nothing but base64 text."""
    data = source.get("data")
    return source.get("media_type") in _IMAGE_TYPES and isinstance(data, str) and bool(_BASE64.match(data))


def edit_diff(tool_input: dict[str, Any]) -> list[tuple[str, str]]:
    """The diff an Edit or MultiEdit call asks for."""
    listed = tool_input.get("edits")
    edits: list[Any] = listed if isinstance(listed, list) else [tool_input]
    lines: list[tuple[str, str]] = []
    for edit in edits:
        if isinstance(edit, dict):
            lines += render.unified_diff(str(edit.get("old_string") or ""), str(edit.get("new_string") or ""),
                                         "old", "new")
    return lines


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.autoescape = True  # captured text is hostile: every {{ }} is escaped, for every template name
    env.trim_blocks = True
    env.lstrip_blocks = True
    env.filters.update(
        markdown=render.markdown, usd=costs.usd, pretty_json=render.pretty_json, shorten=render.shorten,
        tokens=lambda n: f"{n or 0:,}", path=lambda v: quote(str(v), safe=""),
    )
    env.globals.update(htmx_js=HTMX_JS, split_reminders=split_reminders, image_ok=image_ok, edit_diff=edit_diff,
                       claude_code=claude_code)
    return templates


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def get_db(request: Request) -> Iterator[Session]:
    with Session(engine_of(request)) as db:
        yield db


def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


def get_prices(request: Request) -> Mapping[str, Rates]:
    return request.app.state.prices


SessionDep = Annotated[Session, Depends(get_db)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
PricesDep = Annotated[Mapping[str, Rates], Depends(get_prices)]
