"""The contract in code: the canonical request and every event kefu publishes.

Every event carries `schema_version`, `event_id` and `occurred_at` (ISO 8601 with offset) at the top
level and, where a request exists, `request_id`. Consumers must ignore fields they do not know, so
the models accept (and keep) extra fields; producers bump `schema_version` for breaking changes only.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from .enums import Category, Channel, Language, Priority, Tier

SCHEMA_VERSION = 1

@functools.lru_cache(maxsize=8192)  # a record's instants are written again at each of its writes
def instant(d: datetime) -> str:
    """kefu's one convention for an instant it writes (events, API answers, records): ISO 8601 in
    UTC with an explicit `+00:00`, whatever offset it was computed or received in. Local times are
    for people: the messages to customers and the console show them in the calendar's time zone."""
    return d.astimezone(UTC).isoformat()


Timestamp = Annotated[AwareDatetime, PlainSerializer(instant, return_type=str)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    return uuid.uuid4().hex


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, use_enum_values=False)


class Event(Model):
    schema_version: int = Field(SCHEMA_VERSION, description="Bumped on breaking changes only.")
    event_id: str = Field(default_factory=new_event_id, description="Unique id of this event.")
    occurred_at: Timestamp = Field(default_factory=utcnow, description="When kefu recorded it.")


class CustomerRef(Model):
    """Who the request is from, as far as kefu recognised them."""

    customer_id: str | None = Field(
        None,
        description="Registered customer id, or a stable id derived from the first contact "
        "(prefix `anon-`) when the contact is not registered.",
        examples=["c-1001", "anon-5f1c0e9b2a7d4c31"],
    )
    name: str | None = Field(None, examples=["张伟"])
    phone: str | None = Field(None, description="E.164 where it could be normalised.", examples=["+8613900001111"])
    email: str | None = Field(None, examples=["zhang.wei@example.cn"])
    wechat_openid: str | None = Field(None, examples=["oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"])
    tier: Tier = Field(Tier.standard, description="vip / standard / special_needs")
    registered: bool = Field(False, description="True when found in the customer directory.")
    account_manager: str | None = Field(None, description="Agent id of a VIP's account manager.")
    reachable: list[str] | None = Field(
        None, description="Contacts kefu may write to (`phone`, `email`, `wechat_openid`, `app_user_id`): those "
        "the sender proved on this channel, and a mail's sender address. Messages go to no other contact. "
        "Absent on requests from before kefu 0.3 (then: every contact above).",
        examples=[["phone"]])
    possible_customer_id: str | None = Field(
        None, description="A registered customer that a contact the sender did not prove belongs to (e.g. a "
        "phone typed into a web form): for an agent to confirm. The request is not treated as theirs.")


class Attachment(Model):
    name: str | None = None
    content_type: str | None = None
    size: int | None = Field(None, description="Bytes, where known.")
    url: str | None = None


class Hints(Model):
    """What the adapter or channel suggested; inputs to kefu's judgement, never verdicts."""

    category: Category | None = None
    urgency: Priority | None = None


class Due(Model):
    first_response: Timestamp
    resolution: Timestamp


class RequestReceived(Event):
    """A customer's request in canonical form, the same whatever the channel."""

    request_id: str = Field(examples=["req_3k2m9x0q7w4e5r6t8y1u2i3o4p"])
    channel: Channel
    source_id: str = Field(description="The channel's own id (call_id, MessageSid, Message-ID ...).")
    received_at: Timestamp = Field(description="When the channel received it.")
    customer: CustomerRef
    subject: str | None = None
    body: str = Field(description="The customer's words as plain text.")
    language: Language
    hints: Hints = Field(default_factory=Hints)
    attachments: list[Attachment] = Field(default_factory=list)
    channel_meta: dict[str, Any] = Field(
        default_factory=dict, description="Channel details worth keeping (IVR path, branch, page url ...)."
    )
    follow_up_of: str | None = Field(
        None, description="The closed request this message continued (a reply, its ref, the same contact or "
        "chat session): the conversation goes on in this new request (docs/conversations.md).")
    conversation: str | None = Field(
        None, description="The key intake keeps the sender's conversations under (hashed, no personal data); "
        "routing repeats it on the events that change a conversation (closed, reopened, replied).")


class RawRef(Model):
    """Where the raw bytes of a rejected payload are kept."""

    stream: str = Field(examples=["KEFU_REJECTED"])
    seq: int | None = Field(None, description="Sequence in that stream (None if keeping it failed).")
    size: int = Field(description="Size of the payload as received, in bytes.")
    kept_bytes: int = Field(description="How many bytes were kept (less than size when truncated).")


class RequestRejected(Event):
    rejection_id: str
    channel: str = Field(description="The channel named by the adapter (may be unknown).")
    reason: str = Field(
        description="Short machine-readable reason.",
        examples=["unparseable", "missing_content", "too_large", "unsupported_media_type", "unknown_channel"],
    )
    detail: str = Field(description="Human-readable explanation.")
    raw: RawRef
    via: Literal["http", "nats"] = "nats"


class RequestAssigned(Event):
    request_id: str
    channel: Channel
    category: Category
    priority: Priority
    tier: Tier
    emergency: bool
    complex: bool = Field(False, description="Needs a dedicated task group and regular progress updates.")
    department: str = Field(description="Lead department.")
    co_departments: list[str] = Field(default_factory=list)
    queue: str
    agent_id: str | None = None
    due: Due
    topic: str = Field(description="The nature of the problem that decided the departments.")
    matched_rules: list[str] = Field(default_factory=list, description="Names of the rules that decided.")
    evidence: dict[str, str] = Field(default_factory=dict, description="Each matched rule (`kind:name`): the "
                                     "words it found in the request, as normalised for matching.")
    scores: dict[str, float] = Field(default_factory=dict, description="Each category's score; the highest won.")


class RequestChange(Event):
    """Base for the lifecycle events: who changed what, and why."""

    request_id: str
    actor: str | None = Field(None, description="Agent, supervisor or `system`.")
    reason: str | None = None


class RequestAccepted(RequestChange):
    agent_id: str


class Correction(BaseModel):
    field: Literal["category", "priority", "department"]
    old: str
    new: str


class RequestCorrected(RequestChange):
    """An agent's correction of routing's judgement: ground truth for the rules (kefu extension).
    A department correction comes with the transfer that made it."""

    department: str = Field(description="The lead department after the correction.")
    queue: str = Field(description="The queue after the correction (a new priority moves a request waiting in "
                       "`<department>.<priority>` to its new priority's queue).")
    changes: list[Correction] = Field(min_length=1)


class RequestTransferred(RequestChange):
    department: str | None = None
    queue: str | None = None
    agent_id: str | None = None


class RequestEscalated(RequestChange):
    level: int = 1


class RequestResolved(RequestChange):
    resolution: str
    first_contact: bool = False
    channel: Channel | None = None
    # where the request stands when it is resolved (after any transfer or reopen)
    department: str | None = None
    priority: Priority | None = None
    tier: Tier | None = None
    # what reporting the result back and asking how it went needs, so that feedback keeps nothing of
    # a request until it is resolved (it no longer consumes request.received)
    language: Language | None = None
    subject: str | None = None
    summary: str | None = Field(None, max_length=500, description="The start of the request as the customer put it.")
    customer: CustomerRef | None = Field(None, description="Who to report back to, as on request.received.")
    app_user_id: str | None = Field(None, description="The app user to deliver to (app channel).")
    misrouted: bool = Field(False, description="Moved to another department since it was first routed, or its "
                            "category or priority corrected by an agent.")
    mail_thread_ids: list[str] = Field(default_factory=list, description="E-mail: the customer's Message-IDs on "
                                       "this request, oldest first (the result and survey thread on them).")


class RequestReopened(RequestChange):
    priority: Priority | None = None
    conversation: str | None = Field(None, description="As on request.received, when routing reopened it.")
    # where the request stood, so that a consumer keeps nothing of a closed request in case it is
    # reopened (metrics drops a request's facts when it is closed)
    department: str | None = None
    channel: Channel | None = None
    first_resolved_at: Timestamp | None = Field(None, description="When the request was first resolved.")
    counted_accurate: bool | None = Field(
        None, description="Whether its first resolution counted as accurate (never reopened before, not misrouted).")


class RequestClosed(RequestChange):
    conversation: str | None = Field(None, description="As on request.received: intake's key of the sender's "
                                     "conversations, so that a follow-up after the close makes a new request.")


class SlaEvent(Event):
    request_id: str
    sla: Literal["first_response", "next_response", "resolution"]
    due: Timestamp
    priority: Priority | None = None


class SlaWarning(SlaEvent):
    pass


class SlaBreached(SlaEvent):
    pass


class SurveyEvent(Event):
    survey_id: str
    request_id: str
    channel: Channel


class SurveySent(SurveyEvent):
    url: str = Field(description="The survey page's address, without the customer's key (`?t=`): the link "
                     "that answers the survey goes only to the customer, in the invitation on kefu.outbound.<channel>.")


class SurveyAnswered(SurveyEvent):
    rating: int = Field(ge=1, le=5)
    comment: str | None = None


class SurveyExpired(SurveyEvent):
    pass


class SurveyReplied(Event):
    """A customer's answer as given, on the survey page or by replying on their channel."""

    survey_id: str
    channel: Channel
    rating: int
    comment: str | None = None
    reasons: list[str] = Field(default_factory=list)
    via: Literal["page", "reply"]
    source_id: str | None = Field(None, description="The reply's channel id (MessageSid, MsgId).")


class FollowupScheduled(Event):
    followup_id: str
    request_id: str
    due: Timestamp


class FollowupCompleted(Event):
    followup_id: str
    request_id: str
    due: Timestamp | None = None
    outcome: Literal["resolved", "recurred", "unreachable"]


class MailThread(Model):
    """What an adapter sends an e-mail with, so that the customer's mail client threads it and their
    answer comes back to the same request."""

    message_id: str = Field(description="The Message-ID to send it with (`<kefu.<message_id>@<domain>>`).")
    in_reply_to: str | None = Field(None, description="The customer's message it answers, when they wrote by mail.")
    references: list[str] = Field(default_factory=list, description="The thread's earlier Message-IDs, oldest first.")
    subject: str = Field(description="Subject line, with the request's `[ref]`.")


class OutboundMessage(Model):
    """A message for a customer, published on `kefu.outbound.<channel>` for the adapter to deliver."""

    schema_version: int = SCHEMA_VERSION
    message_id: str = Field(description="Stable id: adapters deduplicate on it.")
    request_id: str | None = None
    channel: Channel
    kind: Literal["receipt", "progress", "result", "survey", "revisit", "notice", "reply"]
    to: dict[str, str] = Field(description="Where to deliver: phone, email, wechat_openid, user_id ...")
    language: Language
    text: str
    occurred_at: Timestamp = Field(default_factory=utcnow)
    thread: MailThread | None = Field(None, description="E-mail: the Message-ID, In-Reply-To, References and "
                                      "subject to send it with (docs/conversations.md).")
    automatic: bool = Field(False, description="Sent by kefu itself (receipt, notice, survey, revisit), not "
                            "written by a person: counts against the per-address hourly loop guard.")


class AuditRecord(Event):
    """A staff member read (or exported) personal data through an API: who, what, when, where."""

    actor: str = Field(description="The token's subject (agent id, supervisor, `admin`).")
    role: str
    action: str = Field(description="e.g. `request.read`, `customer.read`, `rejected.read`.")
    object_id: str = Field(description="The request, customer or raw payload read.")
    service: str
    path: str


class SupervisorAlert(Model):
    """Published on `kefu.outbound.supervisor.<department>` for the supervisors' pager or IM bridge:
    emergencies, escalations, offers nobody accepted, requests reopened by the customer."""

    alert_id: str
    request_id: str
    department: str
    queue: str | None = None
    priority: Priority | None = None
    emergency: bool = False
    reason: str
    level: int = 1
    occurred_at: Timestamp = Field(default_factory=utcnow)
