"""Messages routing sends: to customers (receipt, progress, breach notice) and to supervisors."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from shared.contract.conversation import short_ref
from shared.contract.enums import Language
from shared.contract.models import OutboundMessage, RequestAssigned, RequestReceived, SupervisorAlert

if TYPE_CHECKING:
    from .record import RequestRecord

FMT = "%Y-%m-%d %H:%M"


class Templates(BaseModel):
    """config/messages.yaml"""

    model_config = ConfigDict(extra="forbid")
    receipt: dict[Language, str]
    breach_notice: dict[Language, str]
    timezone: str = "Asia/Shanghai"


def recipient(request: RequestReceived) -> dict[str, str]:
    """Where the channel's adapter delivers: the contacts the sender proved (`customer.reachable`),
    never one they only named (docs/security.md#identity)."""
    c = request.customer
    candidates = {
        "phone": c.phone,
        "email": c.email,
        "wechat_openid": c.wechat_openid,
        "app_user_id": request.channel_meta.get("app_user_id"),
    }
    return {k: str(v) for k, v in candidates.items() if v and (c.reachable is None or k in c.reachable)}


AUTOMATIC = ("receipt", "notice")  # written by no person: they count against the loop guard


def _local(t: datetime, templates: Templates) -> str:
    return t.astimezone(ZoneInfo(templates.timezone)).strftime(FMT)


def receipt(*, request: RequestReceived, assigned: RequestAssigned, templates: Templates) -> OutboundMessage:
    text = templates.receipt[request.language].format(
        ref=short_ref(request.request_id),
        first_response=_local(assigned.due.first_response, templates),
        resolution=_local(assigned.due.resolution, templates),
    )
    return _message(request, "receipt", "receipt", text, assigned.occurred_at)


def progress(*, request: RequestReceived, text: str, version: int, at: datetime) -> OutboundMessage:
    return _message(request, "progress", f"progress.{version}", text, at)


def reply_message(*, request: RequestReceived, text: str, version: int, at: datetime) -> OutboundMessage:
    return _message(request, "reply", f"reply.{version}", text, at)


def notice(*, request: RequestReceived, templates: Templates, expected: datetime, at: datetime) -> OutboundMessage:
    text = templates.breach_notice[request.language].format(
        ref=short_ref(request.request_id), expected=_local(expected, templates)
    )
    return _message(request, "notice", "breach_notice", text, at)


def supervisor_alert(*, record: RequestRecord, reason: str, level: int, at: datetime) -> SupervisorAlert:
    return SupervisorAlert(
        alert_id=f"alert.{record.request_id}.{level}",
        request_id=record.request_id,
        department=record.department,
        queue=record.queue,
        priority=record.priority,
        emergency=record.assignment.emergency,
        reason=reason,
        level=level,
        occurred_at=at,
    )


def _message(request: RequestReceived, kind: str, suffix: str, text: str, at: datetime) -> OutboundMessage:
    return OutboundMessage(
        message_id=f"{suffix}.{request.request_id}",
        request_id=request.request_id,
        channel=request.channel,
        kind=kind,
        to=recipient(request),
        language=request.language,
        text=text,
        occurred_at=at,
        automatic=kind in AUTOMATIC,
    )
