"""The console's page as files (services/console/static): nothing loaded from outside kefu, no
inline script (the CSP allows none), and every word the page asks for in both languages."""

from __future__ import annotations

import re
from pathlib import Path

from services.console.api import ASSETS, PAGE_HEADERS

STATIC = Path(__file__).parents[3] / "services" / "console" / "static"


def words() -> dict[str, set[str]]:
    text = (STATIC / "i18n.js").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"\n  (en|zh): \{(.*?)\n  \}", text, flags=re.S))
    return {lang: set(re.findall(r'(?:^|[\s,{])"?([a-z_][a-z_.]*)"?:\s*"', block)) for lang, block in blocks.items()}


def test_nothing_comes_from_outside_kefu() -> None:
    for path in STATIC.iterdir():
        text = re.sub(r'xmlns="[^"]*"', "", path.read_text(encoding="utf-8"))  # a namespace name, not a load
        external = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.I)
        assert external == [], (path.name, external)
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)="([^"#]+)"', html) == [
        "/assets/favicon.svg", "/assets/console.css", "/assets/i18n.js", "/assets/console.js"]
    assert all(Path(ref).name in ASSETS for ref in re.findall(r'(?:src|href)="/assets/([^"]+)"', html))


def test_no_inline_script_or_style_and_a_strict_policy() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [] and " on" not in html.replace(" only", "")
    assert "style=" not in html and "<style" not in html
    policy = PAGE_HEADERS["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy and "default-src 'none'" in policy


def test_customer_text_is_never_parsed_as_markup() -> None:
    script = (STATIC / "console.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)


def test_every_word_the_page_uses_is_there_in_both_languages() -> None:
    script = (STATIC / "console.js").read_text(encoding="utf-8")
    used = set(re.findall(r'\bt\("([a-z_.]+)"', script))
    both = words()
    assert both["en"] == both["zh"], both["en"] ^ both["zh"]
    assert used - both["en"] == set()
    assert len(used) > 60
