"""Revisits (回访) and the monthly sample. Pure."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel

from shared.contract.models import Timestamp

from .survey import RequestView

Outcome = Literal["resolved", "recurred", "unreachable"]


class Followup(BaseModel):
    followup_id: str
    request_id: str
    due: Timestamp
    status: Literal["scheduled", "completed"] = "scheduled"
    outcome: Outcome | None = None
    note: str | None = None
    completed_at: Timestamp | None = None
    completed_by: str | None = None
    task_sent: bool = False


def followup_id_for(request_id: str, resolution_no: int) -> str:
    return "fu_" + hashlib.sha256(f"{request_id}:{resolution_no}".encode()).hexdigest()[:20]


def previous_month(today: date) -> str:
    first = today.replace(day=1)
    year, month = (first.year, first.month - 1) if first.month > 1 else (first.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def in_month(at: datetime | None, month: str, tz) -> bool:
    return at is not None and at.astimezone(tz).strftime("%Y-%m") == month


def monthly_sample(views: list[RequestView], *, month: str, share: float, tz) -> list[RequestView]:
    """Per department, `share` of the month's resolved requests that got no survey (at least one
    where any exist), chosen by a hash of month and request id: reproducible, and spread evenly."""
    by_department: dict[str, list[RequestView]] = defaultdict(list)
    for v in views:
        if not v.surveyed and in_month(v.resolved_at, month, tz):
            by_department[v.department or "unknown"].append(v)
    chosen: list[RequestView] = []
    for department in sorted(by_department):
        group = sorted(by_department[department],
                       key=lambda v: hashlib.sha256(f"{month}:{v.request_id}".encode()).hexdigest())
        count = min(len(group), max(1, math.ceil(len(group) * share))) if share > 0 else 0
        chosen += group[:count]
    return chosen
