"""Phone / IVR bridge JSON: the call, its IVR path, transcript and the agent's notes."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from ..contacts import normalise_phone
from ..errors import MissingContent
from ..model import Contact, ParsedRequest
from ..text import normalise_whitespace, one_line
from .common import ParseContext, Payload, aware, hints, load_json_object, require_id, validate

WHAT = "phone payload"


class PhonePayload(Payload):
    call_id: str | None = None
    caller: str | None = None
    called: str | None = None
    started_at: datetime | None = None
    ivr_path: list[str] = Field(default_factory=list)
    transcript: str | None = None
    agent_notes: str | None = None
    customer_name: str | None = None
    category: str | None = None
    urgency: str | None = None


def parse_phone(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    p = validate(PhonePayload, load_json_object(raw, WHAT), WHAT)
    call_id = require_id(p.call_id, "call_id", WHAT)
    parts = [normalise_whitespace(t) for t in (p.transcript, p.agent_notes) if t and t.strip()]
    if not parts:
        raise MissingContent(f"{WHAT} has neither transcript nor agent_notes")
    return ParsedRequest(
        source_id=call_id,
        received_at=aware(p.started_at, ctx),
        contact=Contact(name=one_line(p.customer_name, 100), phone=normalise_phone(p.caller, ctx.region)),
        body="\n\n".join(parts),
        hints=hints(p.category, p.urgency),
        channel_meta={
            "called": one_line(p.called, 40),
            "ivr_path": [one_line(d, 10) for d in p.ivr_path[:20]],
            "has_transcript": bool(p.transcript and p.transcript.strip()),
        },
    )
