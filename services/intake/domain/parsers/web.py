"""Portal JSON: a contact form (`form_id`) or a web-chat transcript (`session_id`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..contacts import normalise_email, normalise_phone
from ..errors import MissingContent
from ..model import Contact, ParsedRequest, ThreadHints
from ..text import normalise_whitespace, one_line
from .common import ParseContext, Payload, attested, hints, load_json_object, parse_time, require_id, validate

WHAT = "web payload"
STAFF = {"agent", "bot", "system", "staff", "operator", "客服"}
MAX_CHAT_MESSAGES = 500


class WebForm(Payload):
    form_id: str
    verified: list[str] = Field(default_factory=list)  # contact kinds the portal checked (a login, a code sent)
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    subject: str | None = None
    message: str | None = None
    category: str | None = None
    page_url: str | None = None
    submitted_at: str | None = None


class Visitor(Payload):
    name: str | None = None
    email: str | None = None
    phone: str | None = None


class ChatLine(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)
    text: str | None = None
    at: str | None = None
    from_: str | None = None

    @classmethod
    def of(cls, item: Any) -> ChatLine:
        if not isinstance(item, dict):
            return cls()
        return cls.model_validate({**item, "from_": item.get("from")})


class WebChat(Payload):
    session_id: str
    verified: list[str] = Field(default_factory=list)  # contact kinds the portal checked (a login, a code sent)
    visitor: Visitor = Visitor()
    messages: list[dict[str, Any]] = Field(default_factory=list)
    page_url: str | None = None
    category: str | None = None


def parse_web(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    data = load_json_object(raw, WHAT)
    if "session_id" in data:
        return _chat(validate(WebChat, data, "web chat"), ctx)
    if "form_id" in data:
        return _form(validate(WebForm, data, "web form"), ctx)
    raise MissingContent("web payload has neither form_id (form) nor session_id (chat)")


def _form(p: WebForm, ctx: ParseContext) -> ParsedRequest:
    body = normalise_whitespace(p.message or "")
    subject = one_line(p.subject, 300)
    if not body and not subject:
        raise MissingContent("web form has an empty message")
    return ParsedRequest(
        source_id=require_id(p.form_id, "form_id", "web form"),
        received_at=parse_time(p.submitted_at, ctx),
        contact=Contact(
            name=one_line(p.name, 100),
            email=normalise_email(p.email),
            phone=normalise_phone(p.phone, ctx.region),
        ),
        attested=attested(p.verified),
        subject=subject,
        body=body or subject or "",
        hints=hints(p.category, None),
        channel_meta={"kind": "form", "page_url": one_line(p.page_url, 500)},
    )


def _chat(p: WebChat, ctx: ParseContext) -> ParsedRequest:
    lines = [ChatLine.of(m) for m in p.messages[:MAX_CHAT_MESSAGES]]
    said = [normalise_whitespace(line.text) for line in lines if line.text and not _is_staff(line.from_)]
    said = [t for t in said if t]
    if not said:
        raise MissingContent("web chat has no message from the visitor")
    times = [t for t in (parse_time(line.at, ctx) for line in lines) if t is not None]
    return ParsedRequest(
        source_id=require_id(p.session_id, "session_id", "web chat"),
        received_at=min(times) if times else None,
        contact=Contact(
            name=one_line(p.visitor.name, 100),
            email=normalise_email(p.visitor.email),
            phone=normalise_phone(p.visitor.phone, ctx.region),
        ),
        attested=attested(p.verified),
        body="\n".join(said),
        hints=hints(p.category, None),
        channel_meta={
            "kind": "chat",
            "page_url": one_line(p.page_url, 500),
            "messages": len(lines),
            "staff_messages": sum(1 for line in lines if _is_staff(line.from_)),
        },
        thread=ThreadHints(lines=said),
    )


def _is_staff(speaker: str | None) -> bool:
    return (speaker or "").strip().lower() in STAFF
