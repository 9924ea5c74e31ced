"""SMS gateway form posts (`application/x-www-form-urlencoded`): MessageSid, From, To, Body."""

from __future__ import annotations

from urllib.parse import parse_qs

from ..contacts import normalise_phone
from ..errors import MissingContent, UnparseablePayload
from ..model import Contact, ParsedRequest
from ..text import decode_utf8, normalise_whitespace, one_line
from .common import ParseContext, require_id

WHAT = "sms form"


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
    sender = normalise_phone(field("From"), ctx.region)
    if not sender:
        raise MissingContent(f"{WHAT} lacks From")
    body = normalise_whitespace(field("Body") or "")
    if not body:
        raise MissingContent(f"{WHAT} has an empty Body")
    return ParsedRequest(
        source_id=sid,
        contact=Contact(phone=sender),
        body=body,
        channel_meta={"to": one_line(field("To"), 40)},
    )
