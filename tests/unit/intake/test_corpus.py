"""Intake's parsers on payloads nobody on this project wrote: public mail-parser test corpora
(mikel/mail, SpamScope/mail-parser, nodemailer/mailparser, MimeKit) and the WeChat pushes of
wechatpy's tests, each file's origin, commit and licence in tests/data/corpus/manifest.json.

Every payload is accepted, ignored as a machine's, or rejected with a reason; none crashes; and
nothing is mojibake (U+FFFD) or an empty body where Python's own `email` package reads clean text.
The figures are printed (`make test` output) and asserted, so a change that rejects more shows."""

from __future__ import annotations

import email
import json
import re
from collections import Counter
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.intake.domain.errors import NotARequest, Rejection
from services.intake.domain.parsers import ParseContext, parse
from shared.contract.enums import Channel

CORPUS = Path(__file__).parents[2] / "data" / "corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
CTX = ParseContext(now=datetime(2026, 12, 5, tzinfo=UTC), tz=ZoneInfo("Asia/Shanghai"))
# Every refusal must be one Python's own `email` package agrees with (`justified`), not a list of
# files: a new corpus file cannot be waved through by adding it here.
REASONS = ("email is empty", "not an RFC 5322 message", "no usable sender", "unsupported MsgType")
DOTTED = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def justified(raw: bytes, detail: str) -> bool:
    """Whether Python's `email` package also finds nothing to make a request of."""
    if "email is empty" in detail:
        return not raw.strip()
    if "unsupported MsgType" in detail:
        return b"<MsgType>" in raw and detail.split("'")[1] not in ("text", "voice", "image", "video", "link")
    msg = email.message_from_bytes(raw.removeprefix(b"\xef\xbb\xbf"), policy=policy.default)
    if "not an RFC 5322 message" in detail:
        return not any(msg.get(h) for h in ("From", "Subject", "Message-ID", "Date"))
    if "no usable sender" in detail:  # no address with a real domain that a reply could go to
        addresses = []
        for header in ("From", "Sender", "Reply-To"):
            try:
                addresses += [a.addr_spec for a in getattr(msg.get(header), "addresses", ())]
            except Exception:  # noqa: BLE001 - Python cannot read it either
                continue
        return not any(DOTTED.match(a) for a in addresses)
    return False


def python_reads(raw: bytes) -> dict[str, str]:
    """What the stdlib's modern parser makes of the same bytes (headers and body as text)."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    read: dict[str, str] = {}
    for name in ("Subject", "From"):
        try:
            read[name] = str(msg.get(name) or "")
        except Exception:  # noqa: BLE001 - the stdlib itself could not
            read[name] = "\ufffd"
    try:
        body = msg.get_body(("plain", "html"))
        read["body"] = body.get_content() if body is not None else ""
    except Exception:  # noqa: BLE001
        read["body"] = "\ufffd"
    return read


def outcome(entry: dict[str, str]) -> tuple[str, str]:
    raw = (CORPUS / entry["file"]).read_bytes()
    channel = Channel.wechat if entry["file"].startswith("wechat/") else Channel.email
    try:
        parsed = parse(channel, raw, CTX)
    except Rejection as rejected:
        return "rejected", str(rejected)
    except NotARequest as event:  # a WeChat event push (subscribe, menu click ...): acknowledged, no request
        return "not a request", str(event)
    if channel is Channel.email:
        theirs = python_reads(raw)
        if parsed.subject and "\ufffd" in parsed.subject and "\ufffd" not in theirs["Subject"]:
            return "mojibake", f"subject {parsed.subject[:60]!r} where Python reads {theirs['Subject'][:60]!r}"
        if "\ufffd" in parsed.body and theirs["body"] and "\ufffd" not in theirs["body"]:
            return "mojibake", f"body {parsed.body[:60]!r}"
        if not parsed.body.strip() and theirs["body"].strip():
            return "empty body", theirs["body"][:60]
    return ("auto" if parsed.thread.auto else "accepted"), parsed.thread.auto or ""


def test_every_payload_of_the_corpus_comes_through_or_is_refused_with_its_reason() -> None:
    results = {entry["file"]: outcome(entry) for entry in MANIFEST}
    counts = Counter(kind for kind, _ in results.values())
    reasons = Counter(next((r for r in REASONS if r in detail), detail[:60])
                      for kind, detail in results.values() if kind == "rejected")
    print(f"\ncorpus: {len(results)} payloads; {dict(counts)}; rejected by reason: {dict(reasons)}")
    bad = {f: r for f, r in results.items() if r[0] in ("mojibake", "empty body")}
    assert bad == {}
    refused = {f: detail for f, (kind, detail) in results.items() if kind == "rejected"}
    unjustified = {f: d for f, d in refused.items() if not justified((CORPUS / f).read_bytes(), d)}
    assert unjustified == {}
    assert all(f.startswith("wechat/") for f, (kind, _) in results.items() if kind == "not a request")
    assert counts["accepted"] + counts["auto"] + counts["not a request"] + counts["rejected"] == len(results)
    assert len(results) >= 300 and counts["rejected"] <= len(results) // 6


@pytest.mark.parametrize("origin", sorted({m["origin"] for m in MANIFEST}))
def test_each_origin_is_cited_with_its_licence(origin: str) -> None:
    entries = [m for m in MANIFEST if m["origin"] == origin]
    assert all(m["commit"] and m["licence"] in ("MIT", "Apache-2.0") and m["path"] for m in entries)
    name = origin.rsplit("/", 2)[-2:]
    licences = {p.name for p in (CORPUS / "LICENSES").iterdir()}
    assert any(n.lower() in lic.lower() for lic in licences for n in name), (origin, licences)
