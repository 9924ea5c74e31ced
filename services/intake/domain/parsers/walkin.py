"""Branch front-desk JSON: the ticket, the branch and staff member, the customer, a summary."""

from __future__ import annotations

from ..contacts import mask_id_number, normalise_phone
from ..errors import MissingContent
from ..model import Contact, ParsedRequest
from ..text import normalise_whitespace, one_line
from .common import ParseContext, Payload, hints, load_json_object, parse_time, require_id, validate

WHAT = "walk-in payload"


class WalkinCustomer(Payload):
    name: str | None = None
    phone: str | None = None
    id_number: str | None = None


class WalkinPayload(Payload):
    ticket_no: str
    branch: str | None = None
    staff_id: str | None = None
    customer: WalkinCustomer = WalkinCustomer()
    summary: str | None = None
    category: str | None = None
    urgency: str | None = None
    created_at: str | None = None


def parse_walkin(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    p = validate(WalkinPayload, load_json_object(raw, WHAT), WHAT)
    body = normalise_whitespace(p.summary or "")
    if not body:
        raise MissingContent("walk-in payload has an empty summary")
    return ParsedRequest(
        source_id=require_id(p.ticket_no, "ticket_no", WHAT),
        received_at=parse_time(p.created_at, ctx),
        contact=Contact(name=one_line(p.customer.name, 100), phone=normalise_phone(p.customer.phone, ctx.region)),
        body=body,
        hints=hints(p.category, p.urgency),
        channel_meta={
            "branch": one_line(p.branch, 100),
            "staff_id": one_line(p.staff_id, 64),
            # identity numbers are personal data: only the last four characters are kept
            "id_number_masked": mask_id_number(p.customer.id_number),
        },
    )
