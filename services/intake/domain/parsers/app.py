"""Mobile-app JSON: the user's text, their profile fields, attachments by URL."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.contract.models import Attachment

from ..contacts import normalise_email, normalise_phone
from ..errors import MissingContent
from ..model import Contact, ParsedRequest
from ..text import normalise_whitespace, one_line
from .common import ParseContext, Payload, attested, hints, load_json_object, parse_time, require_id, validate

WHAT = "app payload"
MAX_ATTACHMENTS = 20


class AppPayload(Payload):
    event_id: str
    verified: list[str] = Field(default_factory=list)  # profile contacts the app checked (a code sent to them)
    user_id: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    app_version: str | None = None
    device: str | None = None
    category: str | None = None
    urgency: str | None = None
    text: str | None = None
    attachments: list[Any] = Field(default_factory=list)
    created_at: str | None = None


def parse_app(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    p = validate(AppPayload, load_json_object(raw, WHAT), WHAT)
    attachments = [a for a in (_attachment(item) for item in p.attachments[:MAX_ATTACHMENTS]) if a]
    body = normalise_whitespace(p.text or "")
    if not body and not attachments:
        raise MissingContent("app payload has no text and no attachments")
    return ParsedRequest(
        source_id=require_id(p.event_id, "event_id", WHAT),
        received_at=parse_time(p.created_at, ctx),
        contact=Contact(
            name=one_line(p.name, 100),
            phone=normalise_phone(p.phone, ctx.region),
            email=normalise_email(p.email),
            app_user_id=one_line(p.user_id, 128),
        ),
        attested=attested(p.verified),
        body=body,
        hints=hints(p.category, p.urgency),
        attachments=attachments,
        channel_meta={"app_version": one_line(p.app_version, 40), "device": one_line(p.device, 100)},
    )


def _attachment(item: Any) -> Attachment | None:
    """Apps send attachments loosely typed: a dict with odd types, or a bare URL string."""
    if isinstance(item, str):
        return Attachment(url=one_line(item, 2000))
    if not isinstance(item, dict):
        return None
    size = item.get("size")
    try:
        size = int(size) if size is not None and not isinstance(size, bool) else None
    except (TypeError, ValueError):
        size = None
    name, url = item.get("name"), item.get("url")
    return Attachment(
        name=one_line(str(name), 200) if name is not None else None,
        url=one_line(str(url), 2000) if url is not None else None,
        size=size if size is None or size >= 0 else None,
    )
