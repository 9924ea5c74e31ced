"""What staff see of requests besides the record itself: the deadlines as time left in the clock
the policy runs on, an agent's work list, and a supervisor's floor. Pure: records, agents and the
waiting index in, models out; `now` passed in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from shared.contract.conversation import short_ref
from shared.contract.enums import Priority
from shared.contract.models import Timestamp

from .dispatch import Agent, Waiting, service_order
from .record import HELD_STATES, RequestRecord, State
from .sla import DEADLINES, Deadline, SlaConfig, SlaState

ClockState = Literal["met", "breached", "warning", "open", "paused"]
FLOOR_WAITING_SHOWN = 50  # waiting requests listed per queue (all are counted)
SUBJECT_SHOWN = 200


class DeadlineView(BaseModel):
    """One deadline as staff read it: when it is due and how much of the policy's clock is left."""

    due: Timestamp
    state: ClockState
    left_seconds: int = Field(description="Time left on the policy's clock (business time for a business-hours "
                              "policy); negative once overdue, by the clock time since it was due.")
    running: bool = Field(description="Whether the clock runs now: false outside business hours, while pending "
                          "on the customer, and once met. A page counts `left_seconds` down only while true.")
    met_at: Timestamp | None = None


def deadline_view(d: Deadline, *, config: SlaConfig, policy_clock: str, paused: bool, now: datetime) -> DeadlineView:
    clock = config.business_hours.clock() if policy_clock == "business" else None

    def between(start: datetime, end: datetime) -> timedelta:
        return clock.between(start, end) if clock is not None else max(end - start, timedelta(0))

    if d.met_at is not None:
        state: ClockState = "met"
        left = between(d.met_at, d.due) if d.met_at < d.due else -between(d.due, d.met_at)
    elif paused and d.remaining is not None:
        state, left = "paused", d.remaining
    else:
        left = between(now, d.due) if now < d.due else -between(d.due, now)
        state = "breached" if d.breached or now >= d.due else "warning" if d.warned or now >= d.warn_at else "open"
    running = d.met_at is None and not paused and between(now, now + timedelta(seconds=1)) > timedelta(0)
    return DeadlineView(due=d.due, state=state, left_seconds=int(left.total_seconds()), running=running,
                        met_at=d.met_at)


def deadline_views(sla: SlaState, *, config: SlaConfig, now: datetime) -> dict[str, DeadlineView]:
    """Every deadline the request has, in the order they come due in its life."""
    paused = sla.paused_since is not None
    return {name: deadline_view(sla.deadlines[name], config=config, policy_clock=sla.clock, paused=paused, now=now)
            for name in DEADLINES if name in sla.deadlines}


class WorkItem(BaseModel):
    """A request in a work list or on the floor: enough to choose what to open, with the customer's
    subject but none of their contacts."""

    request_id: str
    ref: str
    state: State
    channel: str
    category: str
    priority: Priority
    emergency: bool
    department: str
    queue: str
    agent_id: str | None
    subject: str
    received_at: Timestamp
    last_activity_at: Timestamp
    offer_expires_at: Timestamp | None = Field(None, description="An offer: accept before this, or it moves on.")
    deadlines: dict[str, DeadlineView]
    escalation_level: int = 0


def work_item(r: RequestRecord, *, config: SlaConfig, offer_timeout: timedelta, now: datetime) -> WorkItem:
    last = r.history[-1].at if r.history else r.request.received_at
    if r.messages and r.messages[-1].at > last:
        last = r.messages[-1].at
    expires = r.offered_at + offer_timeout if r.state == "offered" and r.offered_at is not None else None
    return WorkItem(
        request_id=r.request_id, ref=short_ref(r.request_id), state=r.state, channel=r.request.channel.value,
        category=r.assignment.category.value, priority=r.priority, emergency=r.assignment.emergency,
        department=r.department, queue=r.queue, agent_id=r.agent_id,
        subject=(r.request.subject or r.request.body)[:SUBJECT_SHOWN], received_at=r.request.received_at,
        last_activity_at=last, offer_expires_at=expires,
        deadlines=deadline_views(r.sla, config=config, now=now), escalation_level=r.escalation_level)


def urgency_order(items: Iterable[WorkItem]) -> list[WorkItem]:
    """Emergencies on top, then newest activity first (an agent's list: what moved last is read first)."""
    return sorted(items, key=lambda i: (not i.emergency, -i.last_activity_at.timestamp(), i.request_id))


class AgentLoad(BaseModel):
    agent_id: str
    name: str
    status: str
    queues: list[str]
    load: int
    capacity: int


class QueueView(BaseModel):
    queue: str
    waiting_count: int
    waiting: list[WorkItem] = Field(description=f"In service order, emergencies first; at most {FLOOR_WAITING_SHOWN}.")
    held: list[WorkItem]
    breached: int = Field(description="Requests of this queue (waiting or held) with a deadline breached.")
    warnings: int = Field(description="... with a deadline in its warning time and none breached.")


class DepartmentFloor(BaseModel):
    department: str
    queues: list[QueueView]
    agents: list[AgentLoad]


def floor_waiting(waiting: Iterable[Waiting], queue: str) -> list[Waiting]:
    """The queue's waiting requests in the order they will be served."""
    return service_order([w for w in waiting if w.queue == queue])


def _alarm(item: WorkItem) -> str | None:
    states = {d.state for d in item.deadlines.values() if d.state != "met"}
    return "breached" if "breached" in states else "warning" if "warning" in states else None


def queue_view(queue: str, *, waiting_count: int, waiting: Sequence[WorkItem], held: Sequence[WorkItem]) -> QueueView:
    alarms = [_alarm(i) for i in (*waiting, *held)]
    return QueueView(queue=queue, waiting_count=waiting_count, waiting=list(waiting),
                     held=urgency_order(held), breached=alarms.count("breached"), warnings=alarms.count("warning"))


def agent_load(agent: Agent) -> AgentLoad:
    return AgentLoad(agent_id=agent.agent_id, name=agent.name or agent.agent_id, status=agent.status,
                     queues=agent.queues, load=agent.load, capacity=agent.capacity)


def department_queues(department: str, *, priorities: Iterable[str], seen: Iterable[str]) -> list[str]:
    """A department's queues: one per priority (`<department>.<priority>`), highest first, then any
    other queue its requests are in now (the VIP queue), by name. `seen`: the queues of the
    department's waiting and held requests."""
    named = [f"{department}.{p}" for p in priorities]
    return named + sorted(set(seen) - set(named))


def held_here(r: RequestRecord, queue: str) -> bool:
    return r.queue == queue and r.state in HELD_STATES
