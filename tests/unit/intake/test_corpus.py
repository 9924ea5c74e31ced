"""Intake's parsers on payloads nobody on this project wrote: public mail-parser test corpora
(mikel/mail, SpamScope/mail-parser, nodemailer/mailparser, MimeKit) and the WeChat pushes of
wechatpy's tests, each file's origin, commit and licence in tests/data/corpus/manifest.json.

Every payload is accepted, ignored as a machine's, or rejected with a reason; none crashes; and
nothing is mojibake (U+FFFD) or an empty body where Python's own `email` package reads clean text.
The figures are printed (`make test` output) and asserted, so a change that rejects more shows."""

from __future__ import annotations

import email
import json
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
# what is rightly refused, file by file: none of these is a customer's mail
REFUSED = {
    "email/mikel-mail/spec__fixtures__emails__error_emails__bad_encoded_subject.eml": "no usable sender",  # no From at all
    "email/mikel-mail/spec__fixtures__emails__mime_emails__raw_email11.eml": "no usable sender",  # "x@xxxxx": no domain
    "email/mikel-mail/spec__fixtures__emails__sample_output_multipart": "empty",  # a zero-byte file
    "email/nodemailer-mailparser/test__fixtures__mixed.eml": "not an RFC 5322 message",  # a MIME body, no headers
    "email/mimekit/UnitTests__TestData__messages__multipart-related-mhtml.txt": "not an RFC 5322 message",  # MHTML
    "email/spamscope-mail-parser/tests__mails__mail_outlook_1": "not an RFC 5322 message",  # an Outlook .msg file
    "wechat/wechatpy/test_parser-13.xml": "unsupported MsgType 'notsure'",  # wechatpy's unknown-type case
}


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
    reasons = Counter(detail.split(":")[0][:60] for kind, detail in results.values() if kind == "rejected")
    print(f"\ncorpus: {len(results)} payloads; {dict(counts)}; rejected by reason: {dict(reasons)}")
    bad = {f: r for f, r in results.items() if r[0] in ("mojibake", "empty body")}
    assert bad == {}
    refused = {f: detail for f, (kind, detail) in results.items() if kind == "rejected"}
    assert sorted(refused) == sorted(REFUSED), set(refused) ^ set(REFUSED)
    assert all(REFUSED[f] in detail for f, detail in refused.items()), refused
    assert counts["accepted"] + counts["auto"] + counts["not a request"] == len(results) - len(REFUSED)
    assert all(f.startswith("wechat/") for f, (kind, _) in results.items() if kind == "not a request")


@pytest.mark.parametrize("origin", sorted({m["origin"] for m in MANIFEST}))
def test_each_origin_is_cited_with_its_licence(origin: str) -> None:
    entries = [m for m in MANIFEST if m["origin"] == origin]
    assert all(m["commit"] and m["licence"] in ("MIT", "Apache-2.0") and m["path"] for m in entries)
    name = origin.rsplit("/", 2)[-2:]
    licences = {p.name for p in (CORPUS / "LICENSES").iterdir()}
    assert any(n.lower() in lic.lower() for lic in licences for n in name), (origin, licences)
