"""A request as routing keeps it: canonical request, routing decision, state, SLA clocks, history,
and the outbox of events its last change still has to publish."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.contract.enums import Priority
from shared.contract.models import RequestAssigned, RequestReceived, Timestamp
from shared.nats.outbox import OutboxItem

from .sla import SlaState

State = Literal["queued", "offered", "accepted", "pending", "resolved", "closed"]
OPEN_STATES: tuple[State, ...] = ("queued", "offered", "accepted", "pending")
HELD_STATES: tuple[State, ...] = ("offered", "accepted", "pending")  # count against the agent's capacity


class HistoryEntry(BaseModel):
    at: Timestamp
    actor: str
    action: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ConversationEntry(BaseModel):
    """One message of the request's conversation, in or out (GET /v1/requests/{id} `messages`)."""

    at: Timestamp
    direction: Literal["in", "out"]
    kind: str = Field(description="in: `request`, `followup`; out: `receipt`, `progress`, `reply`, `notice`, "
                      "`result` (the resolution, which feedback reports to the customer).")
    by: str = Field(description="The channel (in), or who wrote it: an agent id, `system`.")
    text: str
    source_id: str | None = Field(None, description="in: the channel's id of the message.")
    message_id: str | None = Field(None, description="out: the outbound message's id; in (e-mail): its Message-ID.")
    matched_by: str | None = None


MAX_MESSAGES = 500  # entries kept in a record; older ones are in the event log
MAX_ENTRY_TEXT = 4000


class LastChange(BaseModel):
    at: Timestamp
    actor: str
    action: str


class RequestSummary(BaseModel):
    """A change's answer: the request's state and assignment, no personal data."""

    request_id: str
    state: State
    department: str
    queue: str
    priority: Priority
    agent_id: str | None
    escalation_level: int
    sla: SlaState
    last: LastChange | None = Field(description="The change just made (or the last one, for a retried call).")


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
    messages: list[ConversationEntry] = Field(default_factory=list, description="The conversation, in order.")

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def held_by(self) -> str | None:
        return self.agent_id if self.state in HELD_STATES else None

    def summary(self) -> RequestSummary:
        """What a change answers (accept, resolve, transfer ...): where the request stands, without
        the customer or what they wrote. Reading those is `GET /v1/requests/{id}`, which is audited."""
        last = self.history[-1] if self.history else None
        return RequestSummary(
            request_id=self.request_id, state=self.state, department=self.department, queue=self.queue,
            priority=self.priority, agent_id=self.agent_id, escalation_level=self.escalation_level, sla=self.sla,
            last=LastChange(at=last.at, actor=last.actor, action=last.action) if last else None)

    def public(self) -> dict[str, Any]:
        """What `GET /v1/requests/{id}` shows (no outbox internals); `messages` begins with the request
        itself, made from it here (the record keeps its words once, in `request`)."""
        shown = self.model_dump(mode="json", exclude={"outbox", "release", "version", "timers"})
        first = ConversationEntry(at=self.request.received_at, direction="in", kind="request",
                                  by=self.request.channel.value, text=self.request.body[:MAX_ENTRY_TEXT],
                                  source_id=self.request.source_id,
                                  message_id=self.request.source_id if self.request.channel.value == "email" else None)
        shown["messages"] = [first.model_dump(mode="json"), *shown["messages"]]
        return shown

    def customer_message_ids(self) -> list[str]:
        """E-mail: the customer's Message-IDs on this request, oldest first (kefu's mail threads on them)."""
        if self.request.channel.value != "email":
            return []
        ids = [self.request.source_id] + [m.message_id for m in self.messages
                                          if m.direction == "in" and m.kind == "followup" and m.message_id]
        return list(dict.fromkeys(ids))
