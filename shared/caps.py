"""Cap on messages sent to one customer per day: the decision, over plain models (no broker).

A second, hourly count is the loop guard: automatic messages (receipts, notices, surveys,
revisits) to one address per hour, whatever the mail that caused them said (docs/conversations.md).

Every outbound message (receipt, progress, result, survey, revisit) counts against the customer's
first contact in `to` (phone, then email, WeChat openid, app user) for the local calendar day. The
same message published again (a retry after a crash) is admitted again without counting twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, Field

from .privacy import contact_key

CONTACT_ORDER = ("phone", "email", "wechat_openid", "user_id")


class DailyCount(BaseModel):
    message_ids: list[str] = Field(default_factory=list)


def cap_key(to: dict[str, Any], day: date) -> str | None:
    """KV key for the customer's count on `day` (hashed contact, never in clear); None without a contact."""
    for kind in CONTACT_ORDER:
        value = to.get(kind)
        if value:
            return f"{contact_key(kind, str(value))}.{day:%Y%m%d}"
    others = sorted((k, str(v)) for k, v in to.items() if v)
    return f"{contact_key(others[0][0], others[0][1])}.{day:%Y%m%d}" if others else None


def hour_key(to: dict[str, Any], at: datetime) -> str | None:
    """KV key of the loop guard's count for the address's hour (`at` in any zone; counted in UTC)."""
    key = cap_key(to, at.date())
    return None if key is None else f"{key.rsplit('.', 1)[0]}.h{at.astimezone(UTC):%Y%m%d%H}"


def admit(count: DailyCount | None, message_id: str, cap: int) -> tuple[bool, DailyCount | None]:
    """(send it?, the count to store or None when nothing changes)."""
    ids = count.message_ids if count is not None else []
    if message_id in ids:
        return True, None
    if len(ids) >= cap:
        return False, None
    return True, DailyCount(message_ids=[*ids, message_id])
