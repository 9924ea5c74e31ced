"""Cap on messages sent to one customer per day: the decision, over plain models (no broker).

The same entry keeps the loop guard: automatic messages (receipts, notices, surveys, revisits) to
one address per local clock hour, whatever the mail that caused them said (docs/conversations.md).

Every outbound message (receipt, progress, result, survey, revisit) counts against the customer's
first contact in `to` (phone, then email, WeChat openid, app user) for the local calendar day. The
same message published again (a retry after a crash) is admitted again without counting twice.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from .privacy import contact_key

CONTACT_ORDER = ("phone", "email", "wechat_openid", "user_id")


class DailyCount(BaseModel):
    message_ids: list[str] = Field(default_factory=list)
    # the loop guard, in the same entry (one write per message): local hour "HH" -> automatic messages
    automatic: dict[str, list[str]] = Field(default_factory=dict)


def cap_key(to: dict[str, Any], day: date) -> str | None:
    """KV key for the customer's count on `day` (hashed contact, never in clear); None without a contact."""
    for kind in CONTACT_ORDER:
        value = to.get(kind)
        if value:
            return f"{contact_key(kind, str(value))}.{day:%Y%m%d}"
    others = sorted((k, str(v)) for k, v in to.items() if v)
    return f"{contact_key(others[0][0], others[0][1])}.{day:%Y%m%d}" if others else None


def admit(count: DailyCount | None, message_id: str, cap: int, *, hour: str | None = None,
          hourly: int = 0) -> tuple[bool, DailyCount | None]:
    """(send it?, the count to store or None when nothing changes). `hour`: the local hour of an
    automatic message, which also counts against `hourly` (the loop guard) in that hour."""
    ids = count.message_ids if count is not None else []
    if message_id in ids:
        return True, None
    if len(ids) >= cap:
        return False, None
    automatic = dict(count.automatic) if count is not None else {}
    if hour is not None:
        if len(automatic.get(hour, [])) >= hourly:
            return False, None
        automatic = {hour: [*automatic.get(hour, []), message_id]}  # earlier hours of the day no longer matter
    return True, DailyCount(message_ids=[*ids, message_id], automatic=automatic)
