"""From a parsed payload and the customer directory's answer to the canonical request."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from pydantic import BaseModel, Field

from shared.contract.enums import Channel, Tier
from shared.contract.models import CustomerRef, RequestReceived

from .contacts import anonymous_customer_id
from .identity import LOOKUP_KINDS, Proof
from .model import Contact, ParsedRequest
from .text import detect_language


class CustomerRecord(BaseModel):
    """A registered customer, as `PUT /v1/customers/{customer_id}` stores it."""

    customer_id: str
    name: str | None = None
    phones: list[str] = Field(default_factory=list)  # normalised
    emails: list[str] = Field(default_factory=list)  # lower-cased
    wechat_openids: list[str] = Field(default_factory=list)
    app_user_ids: list[str] = Field(default_factory=list)
    tier: Tier = Tier.standard
    account_manager: str | None = None

    def contacts(self) -> list[tuple[str, str]]:
        return (
            [("phone", p) for p in self.phones]
            + [("email", e) for e in self.emails]
            + [("wechat", w) for w in self.wechat_openids]
            + [("app", a) for a in self.app_user_ids]
        )


def source_key(channel: Channel, source_id: str) -> str:
    """KV key of a (channel, source id) pair: hashed, since source ids may carry personal data."""
    return f"{channel.value}.{hashlib.sha256(source_id.encode()).hexdigest()[:40]}"


def request_id_for(channel: Channel, source_id: str) -> str:
    """The request id is a function of (channel, source id): every delivery of one payload, over
    HTTP or NATS, before or after a restart, names the same request."""
    digest = hashlib.sha256(f"{channel.value}\x00{source_id}".encode()).digest()
    return "req_" + base64.b32encode(digest).decode().lower().rstrip("=")[:26]


def rejection_id_for(channel: str, raw: bytes) -> str:
    digest = hashlib.sha256(channel.encode() + b"\x00" + raw).digest()
    return "rej_" + base64.b32encode(digest).decode().lower().rstrip("=")[:26]


def customer_ref(contact: Contact, record: CustomerRecord | None, *, proof: Proof,
                 possible_customer_id: str | None = None) -> CustomerRef:
    """The request's customer: the registered one when a contact the sender proved matched, else a
    stable anonymous id of the first proven contact (none: nobody to recognise again)."""
    given = {"phone": contact.phone, "email": contact.email, "wechat_openid": contact.wechat_openid}
    reachable = sorted(proof.reachable)
    if record is not None:
        # a registered customer can also be reached at the contacts the company registered for them
        # (its own directory, not the sender's word): where a message goes when their channel
        # refuses it (WeChat's 48-hour window, docs/conversations.md)
        directory = {"phone": record.phones[0] if record.phones else None,
                     "email": record.emails[0] if record.emails else None}
        for kind, value in directory.items():
            if value and not given[kind]:
                given[kind] = value
            if value and given[kind] == value and kind not in reachable:
                reachable = sorted({*reachable, kind})
        return CustomerRef(customer_id=record.customer_id, name=contact.name or record.name, **given,
                           tier=record.tier, registered=True, account_manager=record.account_manager,
                           reachable=reachable)
    keys = [(kind, value) for kind, value in contact.lookup_keys() if LOOKUP_KINDS[kind] in proof.proven]
    return CustomerRef(customer_id=anonymous_customer_id(*keys[0]) if keys else None, name=contact.name, **given,
                       reachable=reachable, possible_customer_id=possible_customer_id)


def canonical_request(
    *,
    channel: Channel,
    parsed: ParsedRequest,
    customer: CustomerRef,
    intake_time: datetime,
    now: datetime,
) -> RequestReceived:
    text = f"{parsed.subject or ''}\n{parsed.body}"
    meta = {k: v for k, v in parsed.channel_meta.items() if v not in (None, "", [])}
    if parsed.contact.app_user_id:
        meta["app_user_id"] = parsed.contact.app_user_id
    return RequestReceived(
        request_id=request_id_for(channel, parsed.source_id),
        occurred_at=now,
        channel=channel,
        source_id=parsed.source_id,
        received_at=parsed.received_at or intake_time,
        customer=customer,
        subject=parsed.subject,
        body=parsed.body,
        language=detect_language(text),
        hints=parsed.hints,
        attachments=parsed.attachments,
        channel_meta=meta,
    )
