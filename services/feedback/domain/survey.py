"""Surveys: ids, signed links, the answer rules, what a low rating causes. Pure."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from shared.contract.enums import Channel, Language, Priority, Tier
from shared.contract.models import RequestResolved, Timestamp

Status = Literal["open", "answered", "expired"]


class Customer(BaseModel):
    customer_id: str | None = None
    name: str | None = None
    contacts: dict[str, str] = Field(default_factory=dict, description="Where to deliver: phone, email ...")


class RequestView(BaseModel):
    """What feedback keeps of a request, from the request.resolved events (from request.received
    before 2026-12: views made then stay valid)."""

    request_id: str
    channel: Channel
    language: Language
    customer: Customer
    subject: str | None = None
    summary: str = ""
    department: str | None = None
    priority: Priority = Priority.normal
    tier: Tier = Tier.standard
    resolved_at: Timestamp | None = None
    first_resolved_at: Timestamp | None = None
    resolution: str | None = None
    resolutions: int = 0
    misrouted: bool = False
    surveyed: bool = False
    survey_ids: list[str] = Field(default_factory=list, description="The request's surveys, oldest first.")
    mail_thread_ids: list[str] = Field(default_factory=list, description="E-mail: the customer's Message-IDs.")


def view_of(event: RequestResolved) -> RequestView | None:
    """Feedback's view of a request, from its (first) resolution; None when the event comes from a
    routing older than the one that puts the customer on it (that routing's feedback kept a view
    from request.received)."""
    c = event.customer
    if c is None or event.channel is None:
        return None
    # only contacts the sender proved: results and surveys never go to one they merely named
    contacts = {k: v for k, v in {"phone": c.phone, "email": c.email, "wechat_openid": c.wechat_openid,
                                  "app_user_id": event.app_user_id}.items()
                if v and (c.reachable is None or k in c.reachable)}
    return RequestView(
        request_id=event.request_id, channel=event.channel, language=event.language or Language.zh,
        subject=event.subject, summary=event.summary or "",
        customer=Customer(customer_id=c.customer_id, name=c.name, contacts=contacts),
        department=event.department, priority=event.priority or Priority.normal, tier=event.tier or c.tier,
        resolved_at=event.occurred_at, first_resolved_at=event.occurred_at, resolution=event.resolution,
        resolutions=1, misrouted=event.misrouted, mail_thread_ids=event.mail_thread_ids)


def resolved_again(view: RequestView, event: RequestResolved) -> RequestView | None:
    """The view with a later resolution (after a reopen) recorded; None for the resolution it
    has already (a redelivery). Department, priority and tier follow the request as it stands."""
    if view.resolved_at == event.occurred_at:
        return None
    return view.model_copy(update={
        "resolved_at": event.occurred_at, "resolution": event.resolution, "resolutions": view.resolutions + 1,
        "first_resolved_at": view.first_resolved_at or view.resolved_at,
        "misrouted": view.misrouted or event.misrouted, "department": event.department or view.department,
        "priority": event.priority or view.priority, "tier": event.tier or view.tier,
        "mail_thread_ids": event.mail_thread_ids or view.mail_thread_ids})


def reopened_context(view: RequestView) -> dict[str, object]:
    """What `request.reopened` carries of the request, for consumers that keep nothing of closed ones."""
    return {"department": view.department, "channel": view.channel,
            "first_resolved_at": view.first_resolved_at or view.resolved_at,
            "counted_accurate": view.resolutions <= 1 and not view.misrouted}


class Survey(BaseModel):
    survey_id: str
    request_id: str
    customer_id: str | None
    channel: Channel
    language: Language
    sent_at: Timestamp
    expires_at: Timestamp
    reminder_at: Timestamp | None = None
    status: Status = "open"
    rating: int | None = None
    comment: str | None = None
    reasons: list[str] = Field(default_factory=list)
    answered_at: Timestamp | None = None
    answered_via: Literal["page", "reply"] | None = None
    reply_keys: list[str] = Field(default_factory=list, description="Contact keys a reply may come from.")
    sample: bool = False


def survey_id_for(origin: str) -> str:
    """Deterministic per origin (the resolved event's id, or a monthly sample's request and month),
    so that a redelivered event makes the same survey."""
    return "srv_" + hashlib.sha256(origin.encode()).hexdigest()[:24]


def link_token(secret: str, survey_id: str) -> str:
    """The link's credential: HMAC-SHA256 of the survey id. Nothing secret is stored."""
    return hmac.new(secret.encode(), survey_id.encode(), hashlib.sha256).hexdigest()


def token_ok(secret: str, survey_id: str, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(link_token(secret, survey_id), token)


def survey_page(base_url: str, survey_id: str) -> str:
    """The survey page's address without the customer's key: what `survey.sent` carries. Anyone
    who reads the event log (metrics, a dashboard) learns which page, not how to answer it."""
    return f"{base_url.rstrip('/')}/v1/surveys/{survey_id}"


def survey_url(base_url: str, secret: str, survey_id: str) -> str:
    """The customer's link: the page with its key (`t`). It travels only in the message to the
    customer (kefu.outbound.<channel>, which only that channel's adapter may read)."""
    return f"{survey_page(base_url, survey_id)}?t={link_token(secret, survey_id)}"


class AnswerRefused(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def answer(survey: Survey, *, rating: int, comment: str | None, reasons: list[str], allowed_reasons: list[str],
           now: datetime, via: Literal["page", "reply"]) -> Survey:
    if survey.status == "answered":
        raise AnswerRefused(409, "already_answered", "this survey has been answered")
    if survey.status == "expired" or now >= survey.expires_at:
        raise AnswerRefused(410, "expired", "this survey has expired")
    if not 1 <= rating <= 5:
        raise AnswerRefused(422, "invalid_rating", "rating must be a whole number from 1 to 5")
    unknown = [r for r in reasons if r not in allowed_reasons]
    if unknown:
        raise AnswerRefused(422, "invalid_reason", f"unknown reason(s): {unknown[:3]}")
    return survey.model_copy(update={
        "status": "answered", "rating": rating, "comment": (comment or "").strip()[:2000] or None,
        "reasons": reasons, "answered_at": now, "answered_via": via,
    })


def raised(priority: Priority) -> Priority:
    """A reopened request is more pressing than it was: normal -> important -> urgent."""
    return {Priority.normal: Priority.important, Priority.important: Priority.urgent}.get(priority, Priority.urgent)


def dissatisfied(rating: int, threshold: int) -> bool:
    return rating <= threshold


def reminder_time(sent_at: datetime, reminder_after: timedelta | None, expires_at: datetime) -> datetime | None:
    if reminder_after is None:
        return None
    at = sent_at + reminder_after
    return at if at < expires_at else None


class SurveyTimer(BaseModel):
    """A survey's invitation (after `invite_delay`), its one reminder, its expiry."""

    timer: Literal["invite", "reminder", "expire"]
    survey_id: str


class RevisitTimer(BaseModel):
    """A follow-up's revisit, when it comes due."""

    timer: Literal["revisit"] = "revisit"
    followup_id: str


class MonthlyTimer(BaseModel):
    """The monthly sampled survey (a repeating schedule)."""

    timer: Literal["monthly"] = "monthly"


FeedbackTimer = Annotated[SurveyTimer | RevisitTimer | MonthlyTimer, Field(discriminator="timer")]
