"""The viewer in a real browser (Debian's chromium via Playwright) against a running server: reading a
session, expanding a subagent, searching, a live update, and a payload set of XSS vectors that must stay inert.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccbridge.storage.db import open_engine
from tests.fixtures import fixture_files
from tests.support.browser import viewer_server
from tests.support.builders import Conversation, fixture_captures, text, tool_result, tool_use, user, write
from tests.unit.viewer.test_pages import session_id_of

pytestmark = pytest.mark.browser

# Each would set window.__xss or open a dialog if it ran.
XSS_VECTORS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "<svg onload=window.__xss=1>",
    '<iframe src="javascript:parent.__xss=1"></iframe>',
    '"><script>window.__xss=1</script>',
    "'><img src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    '<a href="javascript:window.__xss=1">click me</a>',
    "[markdown link](javascript:window.__xss=1)",
    "[mixed case](JaVaScRiPt:alert(1))",
    '![image](x" onerror="alert(1))',
    "<details open ontoggle=alert(1)>x</details>",
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<div hx-get="/api/sessions" hx-trigger="load" hx-on::after-request="window.__xss=1">htmx</div>',
    '<button hx-on:click="alert(1)" id="hxbtn">htmx click</button>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    "<marquee onstart=alert(1)>m</marquee>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<form action="javascript:alert(1)"><button>x</button></form>',
    "<svg><script>alert(1)</script></svg>",
    '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "</textarea><script>alert(1)</script>",
    "</pre><script>alert(1)</script>",
    "</code><img src=x onerror=alert(1)>",
    "<scr<script>ipt>alert(1)</script>",
    "`<img src=x onerror=alert(1)>`",
    "```\n</code></pre><script>alert(1)</script>\n```",
    '<a href="&#106;avascript:alert(1)">entity</a>',
    "[entity](&#106;avascript:alert(1))",
    '<https://x.example/" onmouseover="alert(1)>',
    "{{ 7*7 }} {% raw %}<script>alert(1)</script>{% endraw %}",
    '<style>*{background:url("javascript:alert(1)")}</style>',
    "[a real link](https://example.com/?q=<script>alert(1)</script>) and <https://example.com/auto>",
]
HOSTILE_SESSION = 'xss-<img src=x onerror=alert(1)>"'


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("browser-db")
    url = f"sqlite:///{folder / 'cc.db'}"
    engine = open_engine(url)
    write(engine, [c for path in fixture_files() for c in fixture_captures(path)])
    engine.dispose()
    with viewer_server(url, folder) as base:
        yield base, url


def sync_session() -> str:
    return session_id_of(next(p for p in fixture_files() if p.stem == "subagent-sync" and p.parent.name == "2.1.329"))


def test_open_a_session_and_expand_its_subagent(fixture_server: tuple[str, str], page: Any) -> None:
    base, _ = fixture_server
    page.goto(f"{base}/")
    page.click(f"tr.session-row[data-session='{sync_session()}'] a")
    page.wait_for_selector("#transcript")
    run = page.locator("div.tool-call details.subagent").first
    prompt = run.locator(".run-prompt")
    assert not prompt.is_visible(), "the run starts collapsed"
    run.locator("summary").first.click()
    assert prompt.is_visible() and "MARKER-PARENT-PROMPT-91c2" in prompt.inner_text()
    assert "MOCK-SUBAGENT-ANSWER" in run.locator(".run-answer").inner_text()
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_search_lands_on_the_turn_even_inside_a_subagent(fixture_server: tuple[str, str], page: Any) -> None:
    base, _ = fixture_server
    page.goto(f"{base}/")
    page.fill("input[name=q]", "MOCK-SUBAGENT-ANSWER")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("li.hit")
    href = page.locator("li.hit a").first.get_attribute("href")
    page.locator("li.hit a").first.click()
    anchor = href.split("#", 1)[1]
    target = page.locator(f"#{anchor}")
    target.wait_for(state="visible", timeout=5000)
    assert "MOCK-SUBAGENT-ANSWER" in target.inner_text()
    assert "hit" in (target.get_attribute("class") or "")
    assert target.locator("xpath=ancestor::details[contains(@class,'subagent')]").count() == 1
    assert page.evaluate("window.__csp") == []


def test_live_update_arrives(fixture_server: tuple[str, str], page: Any) -> None:
    base, url = fixture_server
    clock = [1_800_000_000.0]
    conv = Conversation("live-session", clock)
    engine = open_engine(url)
    try:
        write(engine, [conv.turn([user("first question")], [text("first answer")])])
        page.goto(f"{base}/sessions/live-session")
        page.wait_for_selector("text=first answer")
        page.locator("details.system-prompt summary").first.click()  # opened by the reader; kept open
        write(engine, [conv.turn([user("second question")], [text("LIVE-UPDATE-ARRIVED")])])
        page.wait_for_selector("text=LIVE-UPDATE-ARRIVED", timeout=15000)
    finally:
        engine.dispose()
    assert page.locator("article.turn").count() == 2
    assert page.locator("details.system-prompt").first.evaluate("d => d.open")


def hostile_captures() -> list[Any]:
    clock = [1_800_000_100.0]
    items = []
    for i, vector in enumerate(XSS_VECTORS):
        headers = [("x-custom-header", vector), ("user-agent", f"claude-cli/2.1.329 {vector}")]
        conv = Conversation(HOSTILE_SESSION if i == 0 else "xss-session", clock, extra_headers=headers)
        call = f"toolu_x{i}"
        items.append(conv.turn(
            [user(f"Prompt {i}: {vector}")],
            [text(f"Answer {i}: {vector}"), {"type": "thinking", "thinking": vector, "signature": "s"},
             tool_use(call, ["Bash", "Read", "Edit", "Grep", f"Tool{vector}"][i % 5],
                      {"command": vector, "file_path": vector, "old_string": vector, "new_string": vector + "!",
                       "pattern": vector, "description": vector})],
        ))
        items.append(conv.turn(
            [tool_result(call, f"Result {i}: {vector}", is_error=i % 2 == 0),
             {"role": "user", "content": [{"type": "image", "source": {
                 "type": "base64", "media_type": f'image/png" onerror="alert({i})', "data": vector}}]}],
            [text(f"Done {i}.")]))
    return items


def assert_inert(page: Any) -> None:
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []  # type: ignore[attr-defined]
    injected = page.evaluate("""() => {
        const main = document.querySelector('main');
        const bad = [];
        for (const el of main.querySelectorAll('*')) {
            if (['SCRIPT','IFRAME','OBJECT','EMBED','SVG','MATH','BASE','META','STYLE','FORM','VIDEO','INPUT',
                 'MARQUEE','BODY'].includes(el.tagName.toUpperCase()) && !el.closest('form.filters'))
                bad.push(el.tagName);
            for (const attr of el.attributes) {
                if (attr.name.startsWith('on') || attr.name.startsWith('hx-on')) bad.push(el.tagName + '@' + attr.name);
                if (['href','src','action','data'].includes(attr.name) && /^\\s*javascript:/i.test(attr.value))
                    bad.push(el.tagName + '@' + attr.name);
            }
        }
        return bad;
    }""")
    assert injected == []
    assert page.evaluate("window.__csp") == [], "nothing tried to run and got blocked"


def test_xss_vectors_stay_inert(tmp_path: Path, page: Any) -> None:
    assert len(XSS_VECTORS) >= 30
    url = f"sqlite:///{tmp_path / 'xss.db'}"
    engine = open_engine(url)
    write(engine, hostile_captures())
    engine.dispose()
    with viewer_server(url, tmp_path) as base:
        page.goto(f"{base}/")
        assert_inert(page)
        page.click("tr.session-row[data-session='xss-session'] a")
        page.wait_for_selector("#transcript article.turn")
        assert page.locator("article.turn").count() == 2 * len(XSS_VECTORS) - 2
        assert "<script>window.__xss=1</script>" in page.locator("#transcript").inner_text()
        for button in page.locator("#transcript button").all():
            button.click()
        assert_inert(page)
        for link in page.locator("a.req-link").all()[:6]:
            page.goto(base + link.get_attribute("href"))
            assert "x-custom-header" in page.content()
            assert_inert(page)
            page.go_back()
        for vector in XSS_VECTORS[:5]:
            page.goto(f"{base}/?q={json.dumps(vector)[1:-1]}")
            assert_inert(page)
        page.goto(f"{base}/")
        page.locator("tr.session-row a").filter(has_text="xss-<img").click()
        page.wait_for_selector("#transcript article.turn")
        assert_inert(page)


def test_api_docs_render_from_the_viewer_alone(fixture_server: tuple[str, str], page: Any) -> None:
    base, _ = fixture_server
    elsewhere: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(base) else elsewhere.append(request.url))
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)  # Swagger UI listed the endpoints
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.startswith("/api/sessions") for p in paths)
    assert page.locator(".title").first.inner_text().startswith("ccbridge viewer")
    assert elsewhere == []  # nothing fetched from a CDN or anywhere else
    assert page.evaluate("window.__csp") == []  # the strict policy holds: no inline script needed
