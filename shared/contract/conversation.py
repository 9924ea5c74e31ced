"""The contract's conversation part: follow-ups, replies in the thread, what is ignored, and the
mail thread ids kefu writes and reads back (docs/conversations.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from .enums import Channel, Language
from .models import Event, MailThread, RawRef, RequestChange, Timestamp

MatchedBy = Literal["reply_to", "ref", "contact", "session"]
MAX_REFERENCES = 20  # message ids kept in `references` (the newest; RFC 5322 allows trimming the middle)


def short_ref(request_id: str) -> str:
    """The reference printed in every message to the customer: 8 characters of the request id."""
    return request_id.removeprefix("req_")[:8].upper()


# the subject of kefu's mail on a request that came without one (a phone call answered by mail ...)
DEFAULT_SUBJECT = {Language.zh: "您的服务请求", Language.en: "Your service request"}

REF_PATTERN = re.compile(r"(?<![A-Za-z0-9])([A-Za-z2-7]{8})(?![A-Za-z0-9])")
_KEFU_MESSAGE_ID = re.compile(r"kefu\.[A-Za-z0-9_.+-]*?(req_[a-z2-7]{26})(?:[.+][A-Za-z0-9_.-]*)?@")


def refs_in(text: str, *, limit: int = 20) -> list[str]:
    """Candidate references in a subject or text (upper-cased, in order). Only a reference of one of
    the sender's own requests ever counts, so a word that happens to look like one is harmless."""
    found: list[str] = []
    for match in REF_PATTERN.finditer(text[:20000]):
        ref = match.group(1).upper()
        if ref not in found:
            found.append(ref)
            if len(found) >= limit:
                break
    return found


def kefu_message_id(message_id: str, domain: str, request_id: str | None = None) -> str:
    """The RFC 5322 Message-ID an adapter sends kefu's message `message_id` with: it names the
    request (`<kefu.receipt.req_…@domain>`; feedback's `result.srv_…` gets `+req_…`), so the
    customer's answer (In-Reply-To/References) finds it again."""
    named = message_id if request_id is None or request_id in message_id else f"{message_id}+{request_id}"
    return f"<kefu.{named}@{domain}>"


def outbound_id(mail_message_id: str) -> str:
    """`<kefu.result.srv_1+req_…@domain>` -> `result.srv_1`: the id kefu published the message with."""
    named = mail_message_id.strip("<> ").partition("@")[0].removeprefix("kefu.")
    return named.partition("+")[0]


def request_named(message_id: str) -> str | None:
    """The request a Message-ID kefu wrote names, or None for anybody else's."""
    match = _KEFU_MESSAGE_ID.search(message_id)
    return match.group(1) if match else None


def mail_thread(*, message_id: str, request_id: str, domain: str, subject: str | None,
                customer_message_ids: list[str], default_subject: str) -> MailThread:
    """`customer_message_ids`: the Message-IDs the customer sent on this request, oldest first."""
    ids = [f"<{i.strip('<> ')}>" for i in customer_message_ids if i]
    ref = short_ref(request_id)
    base = (subject or default_subject).strip()
    if f"[{ref}]" not in base:
        base = f"{base} [{ref}]"
    if subject and not re.match(r"(?i)^(re|回复|答复)\s*[:：]", base):
        base = f"Re: {base}"
    return MailThread(message_id=kefu_message_id(message_id, domain, request_id), in_reply_to=ids[-1] if ids else None,
                      references=ids[-MAX_REFERENCES:], subject=base[:300])


class RequestMessage(Event):
    """A customer message that continues a request, appended to it (`kefu.events.request.message`)."""

    request_id: str
    channel: Channel
    source_id: str = Field(description="The message's channel id (Message-ID, MsgId, `<session_id>#<lines>` ...).")
    text: str = Field(description="What the customer wrote (for web chat: the transcript's new lines).")
    subject: str | None = None
    received_at: Timestamp
    matched_by: MatchedBy
    message_id: str | None = Field(None, description="E-mail: the customer's Message-ID (kefu threads its answer on it).")
    attachments: list[dict] = Field(default_factory=list)


class MessageIgnored(Event):
    """A message kefu will never answer (auto-generated mail), kept with its raw bytes."""

    channel: str
    reason: str = Field(examples=["auto_generated"])
    detail: str = Field(description="Which sign gave it away (`Auto-Submitted: auto-replied`, `multipart/report` ...).")
    source_id: str | None = None
    raw: RawRef


class OutboundFailed(Event):
    """A message kefu sent did not arrive: a bounce naming its Message-ID (intake), or a platform
    that refused it or reported it undelivered (gateway: WeChat outside its 48-hour window, an SMS
    delivery status `failed`/`undelivered`)."""

    message_id: str = Field(description="kefu's outbound message id (`receipt.req_...`).")
    request_id: str | None = None
    channel: Channel = Channel.email
    reason: str = Field(examples=["bounced"])
    detail: str | None = None


class OutboundDelivered(Event):
    """A platform confirmed a message kefu sent reached the customer (an SMS delivery status)."""

    message_id: str = Field(description="kefu's outbound message id.")
    request_id: str | None = None
    channel: Channel
    platform_id: str | None = Field(None, description="The platform's id of the message (an SMS MessageSid).")


class RequestReplied(RequestChange):
    """An agent answered the customer in the thread; the reply went out as `kind: reply`."""

    agent_id: str
    channel: Channel
    message_id: str = Field(description="The outbound message's id.")
    text: str
    conversation: str | None = Field(None, description="As on request.received (the reply is activity in it).")


class CustomerWrote(RequestChange):
    """Routing's note to whoever works the request: the customer wrote again (an event the holding
    agent, or their console, subscribes to). `reopened`: the message took a resolved request up again."""

    agent_id: str | None = Field(None, description="The agent holding the request, if any.")
    department: str
    queue: str
    state: str
    matched_by: MatchedBy | None = None
    reopened: bool = False
    source_id: str


Kind = Literal["new", "followup", "auto"]
