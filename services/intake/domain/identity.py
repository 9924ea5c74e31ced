"""Which contacts a message proves, per channel, and so whom kefu may take the sender for and write
to. Pure.

A contact is *proven* when the channel's platform vouches that the sender controls it: the carrier
for a caller's or an SMS sender's number, WeChat for an openid, the app for its signed-in user,
branch staff who checked the customer's identity document, a mail domain's DMARC for a sender
address when the receiving mail server (a trusted authserv-id) says so, and a portal or app that
lists a contact in `verified` (it checked it: a login, a code sent to it). Anything else is only
*claimed*: a phone typed into a web form proves nothing.

- Only proven contacts recognise a customer (their id, tier, account manager, requests waiting on
  them). A claimed contact that belongs to a registered customer makes that customer *possible*,
  for an agent to confirm; the request is treated as an unknown sender's.
- kefu writes only to contacts the sender proved, and to a mail's sender address (a reply reaches
  only that mailbox, so nothing goes to someone the sender named).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import authres

from shared.contract.enums import Channel

from .model import Contact

if TYPE_CHECKING:  # canonical.py imports this module
    from .canonical import CustomerRecord

# contact kinds as outbound messages name them in `to`
PHONE, EMAIL, WECHAT, APP = "phone", "email", "wechat_openid", "app_user_id"
ATTESTABLE = frozenset({PHONE, EMAIL})  # what a portal or app may vouch for in `verified`

PROVEN_BY_CHANNEL: dict[Channel, frozenset[str]] = {
    Channel.phone: frozenset({PHONE}),  # the carrier's caller id
    Channel.sms: frozenset({PHONE}),  # the carrier's sender number
    Channel.wechat: frozenset({WECHAT}),  # the platform's openid, on a signed push
    Channel.app: frozenset({APP}),  # the app's signed-in user
    Channel.walkin: frozenset({PHONE}),  # staff checked the customer's identity document
    Channel.email: frozenset(),  # From is forged at will: only DMARC proves it
    Channel.web: frozenset(),  # typed into a form or a chat
}


LOOKUP_KINDS = {"phone": PHONE, "email": EMAIL, "wechat": WECHAT, "app": APP}  # Contact.lookup_keys -> kinds


@dataclass(frozen=True)
class Proof:
    proven: frozenset[str]  # recognise the customer, and may be written to
    reachable: frozenset[str]  # may be written to


def kinds_of(contact: Contact) -> dict[str, str]:
    """The contact's values by kind."""
    values = {PHONE: contact.phone, EMAIL: contact.email, WECHAT: contact.wechat_openid, APP: contact.app_user_id}
    return {kind: value for kind, value in values.items() if value}


def proof(channel: Channel, contact: Contact, *, attested: Iterable[str] = ()) -> Proof:
    """`attested`: kinds the payload vouches for (a portal's or app's `verified`, or "email" for a
    mail whose sender passed DMARC at a trusted server), taken where the channel allows it."""
    present = set(kinds_of(contact))
    vouched = set(attested) & (ATTESTABLE if channel in (Channel.web, Channel.app) else
                               {EMAIL} if channel is Channel.email else set())
    proven = (PROVEN_BY_CHANNEL[channel] | vouched) & present
    reachable = proven | ({EMAIL} & present if channel is Channel.email else set())
    return Proof(frozenset(proven), frozenset(reachable))


def recognise(matches: Sequence[tuple[str, CustomerRecord]],
              proven: frozenset[str]) -> tuple[CustomerRecord | None, str | None]:
    """(the registered customer of the first proven contact that leads to one, or None; a registered
    customer only an unproven contact leads to: possible, for an agent to confirm, or None)."""
    record = next((customer for kind, customer in matches if kind in proven), None)
    possible = next((customer.customer_id for kind, customer in matches
                     if kind not in proven and (record is None or customer.customer_id != record.customer_id)), None)
    return record, possible


def sender_authenticated(headers: Iterable[str], *, trusted: Iterable[str], from_domain: str | None) -> bool:
    """True when an Authentication-Results header (RFC 8601) added by one of the `trusted`
    authserv-ids says `dmarc=pass` for the From domain. Headers of any other authserv-id are
    ignored: the sender can write them; the receiving server removes forged ones of its own id."""
    trusted = {t.lower() for t in trusted}
    if not trusted or not from_domain:
        return False
    for header in headers:
        try:
            parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {header}")
        except Exception:  # noqa: BLE001 - any unparseable header proves nothing
            continue
        if (parsed.authserv_id or "").lower() not in trusted:
            continue
        for result in parsed.results:
            domains = {(p.value or "").lower() for p in result.properties if (p.type, p.name) == ("header", "from")}
            if result.method == "dmarc" and result.result == "pass" and from_domain.lower() in domains:
                return True
    return False
