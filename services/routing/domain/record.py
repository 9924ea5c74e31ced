"""A request as routing keeps it: canonical request, routing decision, state, SLA clocks, history,
and the outbox of events its last change still has to publish."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.enums import Priority
from shared.models import RequestAssigned, RequestReceived, Timestamp
from shared.outbox import OutboxItem

from .sla import SlaState

State = Literal["queued", "offered", "accepted", "pending", "resolved", "closed"]
OPEN_STATES: tuple[State, ...] = ("queued", "offered", "accepted", "pending")
HELD_STATES: tuple[State, ...] = ("offered", "accepted", "pending")  # count against the agent's capacity


class HistoryEntry(BaseModel):
    at: Timestamp
    actor: str
    action: str
    detail: dict[str, Any] = Field(default_factory=dict)


class RequestRecord(BaseModel):
    request: RequestReceived
    assignment: RequestAssigned
    state: State = "queued"
    department: str
    queue: str
    priority: Priority
    skills: list[str] = Field(default_factory=list)
    agent_id: str | None = None
    offers: int = 0
    offered_at: Timestamp | None = None
    declined_by: list[str] = Field(default_factory=list)
    escalation_level: int = 0
    sla: SlaState
    resolution: str | None = None
    first_contact: bool | None = None
    version: int = 0
    history: list[HistoryEntry] = Field(default_factory=list)
    outbox: list[OutboxItem] = Field(default_factory=list)
    release: list[str] = Field(default_factory=list, description="Agents whose active list must drop this request.")
    timers: dict[str, str] = Field(default_factory=dict, description="Timers scheduled: name -> fire time.")

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def held_by(self) -> str | None:
        return self.agent_id if self.state in HELD_STATES else None

    def public(self) -> dict[str, Any]:
        """What `GET /v1/requests/{id}` shows (no outbox internals)."""
        return self.model_dump(mode="json", exclude={"outbox", "release", "version", "timers"})
