"""Every HTTP call the README and docs/ name exists, with that method, in the generated OpenAPI
documents (the sh blocks that make calls are run against `make run` in tests/e2e/test_make_run.py).
A doc line that names a call the services do not serve is a bug."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CALL = re.compile(r"\b(GET|POST|PUT|DELETE|PATCH)\s+(/v1/[A-Za-z0-9_{}<>&;/.\-…]*|/(?:healthz|readyz|metrics|docs))")
SH = re.compile(r"```sh\n(.*?)```", re.S)


def curl_calls(text: str) -> list[tuple[str, str]]:
    """(method, path) of every curl command in the text's sh blocks."""
    calls = []
    for block in SH.findall(text):
        for command in block.replace("\\\n", " ").splitlines():
            for part in command.split("curl ")[1:]:
                url = re.search(r"https?://127\.0\.0\.1:\d+(/v1/[^\s\"'?]*)", part)
                if url:
                    method = re.search(r"-X (GET|POST|PUT|DELETE)", part)
                    calls.append((method.group(1) if method else "GET", url.group(1)))
    return calls


def served() -> set[tuple[str, str]]:
    calls = set()
    for document in (ROOT / "docs" / "api").glob("openapi-*.json"):
        for path, operations in json.loads(document.read_text())["paths"].items():
            calls |= {(method.upper(), path) for method in operations}
    return calls


def matches(template: str, written: str) -> bool:
    """`/v1/requests/{request_id}/accept` matches `/v1/requests/{id}/accept`, `/v1/requests/req_x/accept`
    and the shorthand `…/accept`."""
    pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    pattern = re.sub(r"{[^}]+}", r"[^/]+", pattern)
    written = written.rstrip(".,;:)")
    if written.startswith("…"):
        return re.search(pattern.split("[^/]+")[-1] + "$", written[1:]) is not None and template.endswith(written[1:])
    return re.fullmatch(pattern, written) is not None


def test_every_call_the_docs_name_is_served() -> None:
    calls = served()
    named, missing = 0, []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found = [(m.group(1), m.group(2)) for m in CALL.finditer(text)]
        found += curl_calls(text)
        for method, path in found:
            named += 1
            path = re.sub(r"&lt;[^&]*&gt;|<[^>]*>|\$[A-Z_]+", "{x}", path.split("?")[0])
            if path in ("/healthz", "/readyz", "/metrics", "/docs"):
                continue
            if not any(m == method and matches(template, path) for m, template in calls):
                missing.append(f"{doc.name}: {method} {path}")
    assert named > 40
    assert missing == []
