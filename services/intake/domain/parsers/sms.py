"""SMS gateway form posts (`application/x-www-form-urlencoded`): MessageSid, From, To, Body, and
MMS media as Twilio posts them (NumMedia, MediaUrl0..N, MediaContentType0..N)."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs

from shared.contract.models import Attachment

from ..contacts import normalise_phone
from ..errors import MissingContent, UnparseablePayload
from ..model import Contact, ParsedRequest
from ..text import decode_utf8, normalise_whitespace, one_line
from .common import ParseContext, require_id

WHAT = "sms form"
MAX_MEDIA = 10  # Twilio's own limit per message
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,19}):(.*)$")
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{3,20}$")


def parse_sms(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    text = decode_utf8(raw, WHAT)
    try:
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except ValueError as exc:
        raise UnparseablePayload(f"{WHAT} is not form-encoded: {exc}") from exc
    if not fields:
        raise UnparseablePayload(f"{WHAT} is empty or not form-encoded")

    def field(name: str) -> str | None:
        values = fields.get(name)
        return values[0] if values else None

    sid = require_id(field("MessageSid") or field("SmsSid"), "MessageSid", WHAT)
    sender_raw = (field("From") or "").strip()
    if not sender_raw:
        raise MissingContent(f"{WHAT} lacks From")
    phone, via = sender(sender_raw, ctx.region)
    attachments = media(field)
    body = normalise_whitespace(field("Body") or "")
    if not body and not attachments:
        raise MissingContent(f"{WHAT} has an empty Body and no media")
    meta = {"to": one_line(field("To"), 40)}
    if phone is None:  # kept for the agent: who wrote, on what
        meta |= {"sender": one_line(sender_raw, 100), "via": via}
    return ParsedRequest(
        source_id=sid,
        contact=Contact(phone=phone),
        body=body,
        attachments=attachments,
        channel_meta=meta,
    )


def sender(raw: str, region: str) -> tuple[str | None, str]:
    """The sender's phone number, or None with what they wrote from. A gateway that also carries
    other networks names them (`whatsapp:+1415…`, `messenger:…`): such a sender is not an SMS
    phone, and kefu must not answer them by SMS at a number made of their id's digits. An
    alphanumeric sender id (`KEFU`, `BANK`) is no phone either."""
    scheme = _SCHEME.match(raw)
    if scheme and scheme.group(1).lower() not in ("tel", "sms"):
        return None, scheme.group(1).lower()
    number = scheme.group(2) if scheme else raw
    if not _PHONE_LIKE.match(number.strip()):
        return None, "sender_id"
    return normalise_phone(number, region), "sms"


def media(field: Callable[[str], str | None]) -> list[Attachment]:
    """MMS pictures and files: NumMedia of them, each a URL at the gateway and its type."""
    try:
        count = min(int(field("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        return []
    found = []
    for i in range(max(count, 0)):
        url = one_line(field(f"MediaUrl{i}"), 1000)
        if url and url.startswith(("https://", "http://")):
            found.append(Attachment(url=url, content_type=one_line(field(f"MediaContentType{i}"), 100),
                                    name=url.rstrip("/").rsplit("/", 1)[-1][:200]))
    return found
