"""A request as routing keeps it: the canonical request, its assignment, state and history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.models import RequestAssigned, RequestReceived, Timestamp


class HistoryEntry(BaseModel):
    at: Timestamp
    actor: str
    action: str
    detail: dict[str, Any] = Field(default_factory=dict)


class RequestRecord(BaseModel):
    request: RequestReceived
    assignment: RequestAssigned
    state: str = "assigned"
    history: list[HistoryEntry] = Field(default_factory=list)

    @classmethod
    def new(cls, *, request: RequestReceived, assignment: RequestAssigned, now: datetime) -> RequestRecord:
        return cls(
            request=request,
            assignment=assignment,
            history=[
                HistoryEntry(at=request.received_at, actor=request.channel.value, action="received"),
                HistoryEntry(
                    at=now,
                    actor="system",
                    action="assigned",
                    detail={
                        "department": assignment.department,
                        "co_departments": assignment.co_departments,
                        "queue": assignment.queue,
                        "category": assignment.category.value,
                        "priority": assignment.priority.value,
                        "emergency": assignment.emergency,
                        "rules": assignment.matched_rules,
                    },
                ),
            ],
        )
