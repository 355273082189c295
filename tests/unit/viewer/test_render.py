"""Markdown and link safety on hostile text, and the small readers of messages."""

from __future__ import annotations

from viewer.limits import windows
from viewer.messages import split_reminders, user_prompt
from viewer.render import markdown, safe_url


def test_markdown_keeps_html_as_text_and_drops_unsafe_links() -> None:
    html = str(markdown('<script>alert(1)</script> [a](javascript:alert(1)) [b](https://ok.example) ![i](http://x/y.png)'))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html.lower()
    assert '<a href="https://ok.example" rel="noopener noreferrer nofollow">b</a>' in html
    assert "<img" not in html


def test_safe_url() -> None:
    assert safe_url("https://a.example") and safe_url("mailto:x@y") and safe_url("/relative") and safe_url("#x")
    assert not any(safe_url(u) for u in ("javascript:alert(1)", " JaVaScRiPt:x", "java\tscript:x", "data:text/html,x",
                                         "vbscript:x", "file:///etc/passwd"))


def test_reminders_and_prompts() -> None:
    text = "<system-reminder>ctx</system-reminder>\nDo the thing"
    assert split_reminders(text) == [(True, "<system-reminder>ctx</system-reminder>"), (False, "Do the thing")]
    assert user_prompt({"role": "user", "content": [{"type": "text", "text": text}]}) == "Do the thing"


def test_limit_windows_order_and_units() -> None:
    parsed = windows({"status": "allowed", "claims": {"7d_oi": {"utilization": 1.02, "status": "rejected"},
                                                      "7d": {"utilization": 0.3, "reset": 1795000000},
                                                      "5h": {"utilization": 0.42, "status": "allowed"}}})
    assert [w.name for w in parsed] == ["5-hour", "weekly", "7d_oi"]
    assert parsed[0].percent == "42%" and parsed[1].reset is not None and parsed[2].status == "rejected"
