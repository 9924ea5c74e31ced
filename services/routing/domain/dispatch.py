"""Who serves what next: service order of waiting requests and the choice of agent. Pure."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contract.enums import Language, Priority, Tier
from shared.contract.models import Timestamp

AgentStatus = Literal["available", "away", "offline"]


class AgentProfile(BaseModel):
    """What `PUT /v1/agents/{agent_id}` sets."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    department: str
    queues: list[str] = Field(default_factory=list, max_length=50)
    skills: list[str] = Field(default_factory=list, max_length=50)
    languages: list[Language] = Field(default_factory=lambda: [Language.zh])
    capacity: int = Field(3, ge=0, le=100)
    status: AgentStatus = "offline"
    role: Literal["agent", "supervisor"] = "agent"


class Agent(AgentProfile):
    agent_id: str
    active: list[str] = Field(default_factory=list, description="Requests offered to or held by the agent.")
    held_in: dict[str, str] = Field(default_factory=dict, description="The queue of each active request: an "
                                    "index for queue listings, written with the hold itself.")

    @property
    def load(self) -> int:
        return len(self.active)

    @property
    def has_room(self) -> bool:
        return self.status == "available" and self.load < self.capacity


class Waiting(BaseModel):
    """A request waiting in a queue, with what it needs from an agent."""

    request_id: str
    queue: str
    department: str
    priority: Priority
    emergency: bool
    received_at: Timestamp
    language: Language
    skills: list[str] = Field(default_factory=list)
    tier: Tier = Tier.standard
    account_manager: str | None = None
    declined_by: list[str] = Field(default_factory=list, description="Agents who let an offer time out.")


def service_order(waiting: list[Waiting]) -> list[Waiting]:
    """Emergencies ahead of everything, then higher priority, then the oldest."""
    return sorted(waiting, key=lambda w: (not w.emergency, -w.priority.rank, w.received_at, w.request_id))


def eligible(w: Waiting, agent: Agent) -> bool:
    return (
        agent.has_room
        and agent.role == "agent"
        and agent.agent_id not in w.declined_by
        and (w.queue in agent.queues or (agent.department == w.department and not agent.queues))
        and (not agent.languages or w.language in agent.languages)
        and set(w.skills) <= set(agent.skills)
    )


def choose_agent(w: Waiting, agents: dict[str, Agent]) -> Agent | None:
    """A VIP's account manager when they have room; else the least-loaded eligible agent
    (ties: lower utilisation, then agent id, so replicas agree)."""
    if w.tier is Tier.vip and w.account_manager:
        manager = agents.get(w.account_manager)
        if manager is not None and manager.has_room and manager.agent_id not in w.declined_by:
            return manager
    candidates = [a for a in agents.values() if eligible(w, a)]
    if not candidates:
        return None
    return min(candidates, key=lambda a: (a.load, a.load / max(a.capacity, 1), a.agent_id))


class WaitingIndex:
    """The waiting requests by queue, by department and by VIP account manager, so that dispatch
    looks only at the requests the agents who have room could take: its cost follows the queues
    they serve, not the whole backlog (10,000 waiting in one department while another's agents are
    free cost every arrival a sort of all 10,000). Kept in step with routing's mirror of kefu_waiting."""

    def __init__(self) -> None:
        self._by_id: dict[str, Waiting] = {}
        self._by_queue: dict[str, dict[str, Waiting]] = {}
        self._by_department: dict[str, dict[str, Waiting]] = {}
        self._by_manager: dict[str, dict[str, Waiting]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def _groups(self, w: Waiting) -> list[tuple[dict[str, dict[str, Waiting]], str]]:
        return [(self._by_queue, w.queue), (self._by_department, w.department),
                *([(self._by_manager, w.account_manager)] if w.account_manager else [])]

    def put(self, w: Waiting) -> None:
        self.remove(w.request_id)
        self._by_id[w.request_id] = w
        for index, key in self._groups(w):
            index.setdefault(key, {})[w.request_id] = w

    def remove(self, request_id: str) -> None:
        old = self._by_id.pop(request_id, None)
        if old is None:
            return
        for index, key in self._groups(old):
            group = index.get(key, {})
            group.pop(request_id, None)
            if not group:
                index.pop(key, None)

    def in_department(self, department: str) -> list[Waiting]:
        """A department's waiting requests (every queue of theirs, the VIP queue's included)."""
        return list(self._by_department.get(department, {}).values())

    def candidates(self, agents: list[Agent]) -> list[Waiting]:
        """The waiting requests any of these agents could be offered: their queues (or, for agents
        without queues, their department's), and the VIP requests of whom they manage."""
        found: dict[str, Waiting] = {}
        for agent in agents:
            groups = ([self._by_queue.get(q, {}) for q in agent.queues] if agent.queues
                      else [self._by_department.get(agent.department, {})])
            for group in [*groups, self._by_manager.get(agent.agent_id, {})]:
                found.update(group)
        return list(found.values())


def plan(waiting: list[Waiting], agents: dict[str, Agent]) -> list[tuple[Waiting, Agent]]:
    """Offers to make now, in service order, never beyond any agent's capacity."""
    load = {a.agent_id: a.model_copy(update={"active": list(a.active)}) for a in agents.values()}
    offers = []
    for w in service_order(waiting):
        agent = choose_agent(w, load)
        if agent is not None:
            offers.append((w, agents[agent.agent_id]))
            agent.active.append(w.request_id)
    return offers


def supervisor_for(department: str, agents: dict[str, Agent]) -> Agent | None:
    """An available supervisor of the department (capacity does not limit escalations)."""
    candidates = [a for a in agents.values()
                  if a.role == "supervisor" and a.department == department and a.status == "available"]
    return min(candidates, key=lambda a: (a.load, a.agent_id)) if candidates else None


class TransferRefused(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def transfer_target(*, current_department: str, department: str | None, queue: str | None, agent: Agent | None,
                    departments: list[str], priorities: list[str], vip_queue: str) -> tuple[str, str | None]:
    """Where a transfer may go: (department, queue or None for the department's queue of the
    request's priority). The same rules as routing's own decisions: a queue exists (a known
    department's `<department>.<priority>`, or the VIP queue) and belongs to the department; a named
    agent belongs to that department or serves that queue, and can take it now (available, room)."""
    if department is not None and department not in departments:
        raise TransferRefused(422, "invalid_body", f"unknown department {department!r}")
    target = department
    if queue is not None and queue != vip_queue:
        owner, _, priority = queue.partition(".")
        if owner not in departments or priority not in priorities:
            raise TransferRefused(422, "invalid_body", f"unknown queue {queue!r}: queues are <department>.<priority> "
                                  f"or {vip_queue!r}")
        if department is not None and owner != department:
            raise TransferRefused(422, "invalid_body", f"queue {queue!r} is not a queue of {department!r}")
        target = owner
    if agent is not None:
        target = target or current_department
        serves = agent.department == target or (queue is not None and queue in agent.queues)
        if not serves:
            raise TransferRefused(422, "invalid_body", f"agent {agent.agent_id!r} is not in {target!r}")
        if not agent.has_room:
            raise TransferRefused(409, "agent_unavailable",
                                  f"agent {agent.agent_id!r} is {agent.status} with {agent.load} of {agent.capacity} "
                                  "requests: transfer to the queue instead")
    return target or current_department, queue


def needs_for(*, topic: str, skills_by_topic: dict[str, list[str]]) -> list[str]:
    return list(skills_by_topic.get(topic, []))


