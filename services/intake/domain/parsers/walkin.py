"""Branch front-desk JSON: the ticket, the branch and staff member, the customer, a summary."""

from __future__ import annotations

from typing import Any

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


# where front-desk systems put the customer's fields when they do not nest them under `customer`
# (the contract's place), and what they call the phone: mapped, so the customer is never lost
VARIANTS = {"phone": ("phone", "mobile", "tel", "customer_phone"), "name": ("name", "customer_name"),
            "id_number": ("id_number", "customer_id_number")}


def _customer(data: dict[str, Any]) -> dict[str, Any]:
    """`customer` with each field taken from its contract place, else from a common variant: a
    phone under `customer.mobile`/`customer.tel`, or any of them at the top level."""
    given = data.get("customer")
    nested: dict[str, Any] = given if isinstance(given, dict) else {}
    customer = dict(nested)
    for field, names in VARIANTS.items():
        if customer.get(field) in (None, ""):
            found = next((source[n] for source in (nested, data) for n in names if source.get(n) not in (None, "")),
                         None)
            if found is not None:
                customer[field] = found
    return customer


def parse_walkin(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    data = load_json_object(raw, WHAT)
    p = validate(WalkinPayload, {**data, "customer": _customer(data)}, WHAT)
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
