"""Raw RFC 5322 mail: MIME multipart, RFC 2047 headers, any charset, HTML-only bodies, attachments.

The MIME structure is parsed with the stdlib's `compat32` policy, whose headers are plain strings,
and only the headers kefu reads are decoded (RFC 2047, RFC 2231, 8-bit) by `policy.default`'s
header factory, once each. Parsing with `policy.default` gives the same values but builds a header
object on every access, which made an e-mail many times dearer than any other channel
(docs/performance.md, "What was changed, measured").
"""

from __future__ import annotations

import copy
import email
import hashlib
import re
from datetime import UTC, datetime
from email import errors, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from shared.contract.models import Attachment
from shared.mailparts import BUCKET, is_attachment, reference

from ..autoreply import auto_generated, bounced_message_ids
from ..contacts import normalise_email
from ..errors import MissingContent, UnparseablePayload
from ..identity import sender_authenticated
from ..model import Contact, ParsedRequest, ThreadHints
from ..text import decode_bytes, html_to_text, normalise_whitespace, one_line
from .common import MAX_ID_LENGTH, ParseContext, aware

WHAT = "email"
MAX_PARTS = 200
MAX_REFERENCES = 50


def parse_email(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    if not raw.strip():
        raise UnparseablePayload("email is empty")
    msg = _message(_envelope_stripped(raw))
    if not msg.keys() and not msg.get_payload():
        raise UnparseablePayload("email has no headers")
    report = msg.get_content_type() == "multipart/report"
    if len(msg.keys()) == 0 or not (report or any(h in msg for h in ("From", "Subject", "Message-ID", "Date"))):
        raise UnparseablePayload("not an RFC 5322 message: no From, Subject, Message-ID or Date header")

    subject = one_line(_header(msg, "Subject"), 500)
    try:
        name, address = _sender(msg)
    except MissingContent:
        # a delivery or disposition report without a From (some MTAs send bounces so) is still a
        # machine's message: ignored as one, not rejected as a customer's without a sender
        if not report:
            raise
        name, address = None, None
    auto = auto_generated(msg, sender=address, subject=subject)
    body, attachments = _content(msg)
    if not body and subject:
        body = subject
    if not body and not attachments and auto is None:
        raise MissingContent("email has no text, no subject and no attachments")

    return ParsedRequest(
        source_id=_message_id(msg, raw),
        received_at=_date(msg, ctx),
        contact=Contact(name=name, email=address),
        attested=["email"] if sender_authenticated(
            [v for k, v in msg.raw_items() if k.lower() == "authentication-results"][:20],
            trusted=ctx.mail_authserv_ids, from_domain=address.rpartition("@")[2] if address else None) else [],
        subject=subject,
        body=body,
        attachments=attachments,
        channel_meta={
            "to": one_line(_header(msg, "To"), 300),
            "in_reply_to": one_line(_header(msg, "In-Reply-To"), MAX_ID_LENGTH),
            "auto_submitted": (one_line(_header(msg, "Auto-Submitted"), 40) or "no") != "no",
        },
        thread=ThreadHints(references=_references(msg), auto=auto,
                           bounced=bounced_message_ids(msg) if auto else []),
    )


def _envelope_stripped(raw: bytes) -> bytes:
    """The message without what a mail store put before it: a UTF-8 byte order mark, and the mbox
    envelope line (`From sender date`, no colon) that procmail, forwarders and mbox exports leave."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    stripped = raw.lstrip(b"\r\n")
    if _ENVELOPE.match(stripped):
        end = stripped.find(b"\n")
        return stripped[end + 1:] if end > 0 else b""
    return raw


_ENVELOPE = re.compile(rb"From (?![ \t]*:)\S")  # `From sender date`; not `From  : ...` (a header, obsolete syntax)
_HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+:")
_SPACED_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:")


def _message(raw: bytes) -> Message:
    """The parsed message. When a line in the header block is not a header (a stray line, a name
    with a space, `From  :` as RFC 5322's obsolete syntax allows, an indented first header), the stdlib ends the headers
    there and From, Subject and the rest become body: the block is repaired (the stray line
    dropped, the name's spaces removed) and parsed again. The raw bytes are kept as they came."""
    try:
        msg = email.message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # the stdlib parser is lenient; anything it raises is a broken message
        raise UnparseablePayload(f"email cannot be parsed: {exc}") from exc
    if not any(isinstance(d, (errors.MissingHeaderBodySeparatorDefect, errors.FirstHeaderLineIsContinuationDefect))
               for d in msg.defects):
        return msg
    repaired = _repair_header_block(raw)
    if repaired is None:
        return msg
    try:
        return email.message_from_bytes(repaired, policy=policy.compat32)
    except Exception:  # noqa: BLE001 - the message as first read, then
        return msg


def _repair_header_block(raw: bytes) -> bytes | None:
    """The header block with its non-header lines fixed or dropped, when real header lines come
    after them (else the first non-header line really is where the body starts); None: nothing to do."""
    lines = raw.split(b"\n")
    block_end = next((i for i, line in enumerate(lines) if not line.strip(b"\r")), len(lines))
    kept: list[bytes] = []
    changed = False
    for i, line in enumerate(lines[:block_end]):
        if i == 0 and line[:1] in (b" ", b"\t") and _HEADER_LINE.match(line.lstrip()):
            kept.append(line.lstrip())  # an indented first header: nothing before it to continue
            changed = True
        elif line[:1] in (b" ", b"\t") or _HEADER_LINE.match(line):
            kept.append(line)
        elif _SPACED_NAME.match(line):
            kept.append(_SPACED_NAME.sub(rb"\1:", line))
            changed = True
        elif kept and any(_HEADER_LINE.match(rest) or _SPACED_NAME.match(rest) for rest in lines[i + 1:block_end]):
            changed = True  # a stray line with headers after it: dropped
        else:
            return None
    return b"\n".join(kept + lines[block_end:]) if changed else None


def _references(msg: Message) -> list[str]:
    """The Message-IDs this mail answers: In-Reply-To, then References from the newest back."""
    ids: list[str] = []
    for header in ("In-Reply-To", "References"):
        found = re.findall(r"<([^<>\s]{1,300})>", (msg.get(header) or "")[:20000])
        for i in found if header == "In-Reply-To" else reversed(found):
            if i not in ids:
                ids.append(i)
    return ids[:MAX_REFERENCES]


def _header(msg: Message, name: str) -> str | None:
    """A header decoded (RFC 2047, any charset), or None; a header too broken to decode is None.
    The first of that name, decoded as `policy.default` would (its `get`) from the raw value.
    Raw 8-bit bytes in a header (GBK from some Chinese mail clients, not RFC 2047-encoded) are
    decoded with the charset fallback bodies get, before: the stdlib makes them U+FFFD."""
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    if not raw.isascii():
        raw = decode_bytes(raw.encode("ascii", "surrogateescape"), _body_charset(msg))
    try:
        return str(policy.default.header_fetch_parse(name, raw))
    except Exception:  # noqa: BLE001 - a header too broken to decode is absent
        return None


def _raw_header(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in msg.raw_items() if key.lower() == wanted), None)


def _body_charset(msg: Message) -> str | None:
    """The charset the message's first text part declares: what its 8-bit headers are most likely in."""
    for count, part in enumerate(msg.walk()):
        if count > MAX_PARTS:
            break
        if part.get_content_maintype() == "text":
            return part.get_content_charset()
    return None


_ADDRESS = re.compile(r'(?:"[^"\r\n]{1,64}"|[^@\s<>"(),;:]{1,64})@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}')


def _sender(msg: Message) -> tuple[str | None, str | None]:
    """The first usable address of From, Sender, Reply-To. A header the address parser reads
    wrongly is read again from its raw value, then searched for an address:
    - `a@b <a@b.it>` (an unquoted @ in the name);
    - `Big Bug bb@bug.com` and `李明 li.ming@example.cn` (no angle brackets), which the parser
      reads as one quoted mailbox, `"Big Bug bb"@bug.com`.
    A local part quoted in the mail itself (`"Big Bug bb"@bug.com`) is one, and kept."""
    for header in ("From", "Sender", "Reply-To"):
        decoded, raw = _header(msg, header) or "", _raw_header(msg, header) or ""
        for value in dict.fromkeys((decoded, raw)):
            for name, addr in getaddresses([value]):
                address = normalise_email(addr)
                if address and (not address.startswith('"') or '"' in raw):
                    return one_line(name, 100), address
        found = _ADDRESS.search(raw)
        if found and (address := normalise_email(found.group(0))):
            return one_line(_words(raw[:found.start()]).strip(' "<'), 100) or None, address
    raise MissingContent("email has no usable sender address (From)")


def _words(value: str) -> str:
    """RFC 2047 encoded words decoded (a display name left of a bare address)."""
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - undecodable: as written
        return value


def _message_id(msg: Message, raw: bytes) -> str:
    value = one_line(_header(msg, "Message-ID"), MAX_ID_LENGTH)
    if value:
        return value.strip("<> ")
    # No Message-ID: the exact bytes identify the message, so a re-delivery is still one request.
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _date(msg: Message, ctx: ParseContext) -> datetime | None:
    value = _header(msg, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000": UTC with no claim about local time (RFC 5322 3.3)
        parsed = parsed.replace(tzinfo=UTC)
    return aware(parsed, ctx)


def _content(msg: Message) -> tuple[str, list[Attachment]]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for count, part in enumerate(msg.walk()):
        if count > MAX_PARTS:
            break
        if part.is_multipart():
            continue
        detached = reference(part)
        part = _decoded_mime(part)
        ctype = part.get_content_type()
        if detached is not None:  # moved out to the object store when the mail was too large for NATS
            attachments.append(Attachment(name=one_line(_filename(part), 200), content_type=ctype, size=detached[1],
                                          url=f"nats-object://{BUCKET}/{detached[0]}"))
            continue
        filename = _filename(part)
        if is_attachment(part, filename=filename, body_seen=bool(plain or html)):
            if ctype == "message/delivery-status":
                continue
            payload = _payload(part)
            attachments.append(
                Attachment(name=one_line(filename, 200), content_type=ctype, size=len(payload))
            )
            continue
        text = decode_bytes(_payload(part), part.get_content_charset())
        if ctype == "text/html":
            html.append(html_to_text(text))
        else:
            plain.append(normalise_whitespace(text))
    body = "\n\n".join(t for t in plain if t) or "\n\n".join(t for t in html if t)
    return body, attachments


_MIME_HEADERS = ("Content-Type", "Content-Disposition", "Content-Transfer-Encoding")
_MIME_KEYS = frozenset(name.lower() for name in _MIME_HEADERS)


def _decoded_mime(part: Message) -> Message:
    """`part` itself when its MIME headers are plain ASCII (nearly every real part); else a view of
    it with those headers decoded as `policy.default` decodes them (an RFC 2047 file name as mail
    clients write it, 8-bit bytes), so that type, charset and file name read as they always did."""
    if all(value.isascii() and "=?" not in value for key, value in part.raw_items() if key.lower() in _MIME_KEYS):
        return part
    view = copy.copy(part)  # the same payload (raw 8-bit bytes included); deleting gives it its own header list
    for name in _MIME_HEADERS:
        decoded = _header(part, name)
        del view[name]
        if decoded is not None:
            view[name] = decoded
    return view


def _filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except Exception:  # noqa: BLE001 - a broken filename is no filename
        return None


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - an undecodable part is empty, not a crash
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
