"""Messages to the customer that routing decides: the receipt (受理回执) with expected times."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from shared.enums import Language
from shared.models import OutboundMessage, RequestAssigned, RequestReceived


class Templates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt: dict[Language, str]
    timezone: str = "Asia/Shanghai"


def recipient(request: RequestReceived) -> dict[str, str]:
    """Where the channel's adapter delivers: the contact the request came from."""
    c = request.customer
    candidates = {
        "phone": c.phone,
        "email": c.email,
        "wechat_openid": c.wechat_openid,
        "app_user_id": request.channel_meta.get("app_user_id"),
    }
    return {k: str(v) for k, v in candidates.items() if v}


def short_ref(request_id: str) -> str:
    return request_id.removeprefix("req_")[:8].upper()


def receipt(*, request: RequestReceived, assigned: RequestAssigned, templates: Templates) -> OutboundMessage:
    tz = ZoneInfo(templates.timezone)
    fmt = "%Y-%m-%d %H:%M"
    text = templates.receipt[request.language].format(
        ref=short_ref(request.request_id),
        first_response=assigned.due.first_response.astimezone(tz).strftime(fmt),
        resolution=assigned.due.resolution.astimezone(tz).strftime(fmt),
    )
    return OutboundMessage(
        message_id=f"receipt.{request.request_id}",
        request_id=request.request_id,
        channel=request.channel,
        kind="receipt",
        to=recipient(request),
        language=request.language,
        text=text,
        occurred_at=assigned.occurred_at,
    )
