"""Turning captured text into safe HTML: markdown with raw HTML off and only plain links, JSON, diffs.

Everything captured is hostile input. Markdown is rendered by markdown-it with `html=False` (tags come out
as text), links are kept only for http(s) and mailto, images become links (nothing is fetched), and every
link opens with `rel="noopener noreferrer nofollow"`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup, escape

SAFE_SCHEMES = ("http", "https", "mailto")
MAX_MARKDOWN = 200_000  # longer text is shown as plain text: markdown on megabytes is slow and unreadable


def safe_url(url: str) -> bool:
    """True for http(s)/mailto URLs and relative ones without a scheme."""
    cleaned = "".join(ch for ch in url.strip() if ch.isprintable() and not ch.isspace())
    scheme = urlsplit(cleaned).scheme.lower()
    if scheme:
        return scheme in SAFE_SCHEMES
    return ":" not in cleaned.split("/", 1)[0]


class _SafeLinks(MarkdownIt):
    """MarkdownIt that keeps only the links `safe_url` allows."""

    def validateLink(self, url: str) -> bool:
        return safe_url(url)


def _markdown() -> MarkdownIt:
    md = _SafeLinks("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")

    def link_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
                  env: EnvType) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


_MD = _markdown()


def markdown(text: str | None) -> Markup:
    if not text:
        return Markup("")
    if len(text) > MAX_MARKDOWN:
        return Markup("<pre class='plain'>") + escape(text) + Markup("</pre>")
    return Markup(_MD.render(text))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def unified_diff(before: str, after: str, before_name: str = "before", after_name: str = "after",
                 limit: int = 4000) -> list[tuple[str, str]]:
    """(css class, line) pairs of a unified diff, at most `limit` lines."""
    lines = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), before_name, after_name, lineterm=""):
        kind = "add" if line.startswith("+") else "del" if line.startswith("-") else "hunk" \
            if line.startswith("@@") else "ctx"
        lines.append((kind, line))
        if len(lines) >= limit:
            lines.append(("hunk", "… (diff cut)"))
            break
    return lines


def shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
