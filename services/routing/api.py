"""HTTP edge of routing: agents, the request lifecycle, queues."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contract.enums import Category, Priority
from shared.contract.models import instant
from shared.http import auth
from shared.http.auth import SUBJECT_PATTERN, Principal, Role
from shared.http.errors import ApiError, ErrorBody
from shared.http.security import Admin, Staff, Supervisor, audit, revoke, staff_key
from shared.nats.publish import together
from shared.runtime import Late

from .domain import lifecycle as lc
from .domain.dispatch import Agent, AgentProfile, AgentStatus, TransferRefused, service_order, transfer_target
from .domain.record import RequestRecord, RequestSummary
from .domain.views import (
    FLOOR_WAITING_SHOWN,
    DepartmentFloor,
    WorkItem,
    agent_load,
    department_queues,
    floor_waiting,
    queue_view,
    urgency_order,
    work_item,
)
from .service import NotFound, Routing, Transition
from .store import Conflict

REQUEST_ID = Annotated[str, Path(pattern=r"^req_[a-z2-7]{26}$")]
AGENT_ID = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
QUEUE = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
AGENT_FIELD = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
                    description="Supervisors and admins: the agent who takes the request. Agents accept for "
                    "themselves (the token's subject) and leave it out.")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Accept(Body):
    agent_id: str | None = AGENT_FIELD


class Note(Body):
    text: str = Field(min_length=1, max_length=4000)
    to_customer: bool = False


class Reply(Body):
    text: str = Field(min_length=1, max_length=4000, description="What the customer reads, on their channel.")


class Pending(Body):
    reason: str | None = Field(None, max_length=1000)


class Transfer(Body):
    reason: str = Field(min_length=1, max_length=1000)
    department: str | None = None
    queue: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    to_agent: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @model_validator(mode="after")
    def _somewhere(self) -> Transfer:
        if not (self.department or self.queue or self.to_agent):
            raise ValueError("name a department, a queue or an agent (to_agent)")
        return self


class Correct(Body):
    category: Category | None = Field(None, description="The category the request really has.")
    priority: Priority | None = Field(None, description="The priority it really has.")
    reason: str = Field(min_length=1, max_length=1000, description="Why: kept with the correction, exported "
                        "with it (`kefu corrections export`).")

    @model_validator(mode="after")
    def _something(self) -> Correct:
        if self.category is None and self.priority is None:
            raise ValueError("give category, priority or both (a department is corrected by a transfer)")
        return self


class Escalate(Body):
    reason: str = Field(min_length=1, max_length=1000)


class Resolve(Body):
    resolution: str = Field(min_length=1, max_length=8000)
    first_contact: bool = False


class Close(Body):
    reason: str | None = Field(None, max_length=1000)


class StatusChange(Body):
    status: AgentStatus


class Work(BaseModel):
    agent_id: str
    status: AgentStatus
    capacity: int
    items: list[WorkItem] = Field(description="Offered to the agent or held by them: emergencies on top, then "
                                  "newest activity first.")


class Floor(BaseModel):
    departments: list[DepartmentFloor]


class TokenRequest(Body):
    subject: str = Field(pattern=SUBJECT_PATTERN, description="The agent id (role agent), or the person's id.")
    role: Role
    departments: list[str] = Field(default_factory=list, max_length=20,
                                   description="Supervisors: the departments they supervise. Agents: taken from "
                                   "their profile (leave empty). Admins: none.")
    ttl_minutes: int = Field(720, ge=5, le=7 * 24 * 60, description="Lifetime; 12 hours (a shift) by default.")


class RevokeRequest(Body):
    subject: str = Field(pattern=SUBJECT_PATTERN, description="The agent id or person whose tokens to void.")
    reason: str = Field("revoked by an admin", max_length=200)


class Revoked(BaseModel):
    subject: str
    not_before: datetime = Field(description="Tokens issued before this no longer work.")


class TokenIssued(BaseModel):
    token: str
    subject: str
    role: Role
    departments: list[str]
    expires_at: datetime


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)}


@contextmanager
def refusals() -> Iterator[None]:
    """A pure access decision's refusal as the HTTP answer."""
    try:
        yield
    except auth.Refused as refused:
        raise ApiError(refused.status, refused.error, refused.detail) from None


def build_api(routing: Late[Routing]) -> APIRouter:
    api = APIRouter()


    async def record_for(request_id: str, who: Principal, *, act: bool) -> RequestRecord:
        """The request, if `who` may see it (act: may change it). Out of scope looks like unknown: 404."""
        found = await routing().store.get(request_id)
        if found is not None:
            r = found[0]
            allowed = (auth.may_act_on_request(who, department=r.department, agent_id=r.agent_id) if act else
                       auth.may_read_request(who, department=r.department, co_departments=r.assignment.co_departments,
                                             agent_id=r.agent_id))
            if allowed:
                return r
        raise ApiError(404, "not_found", f"no request {request_id}")

    async def change(request_id: str, who: Principal, transition: Transition) -> RequestSummary:
        await record_for(request_id, who, act=True)
        try:
            record = await routing().apply(request_id, transition)
        except NotFound:
            raise ApiError(404, "not_found", f"no request {request_id}") from None
        except lc.InvalidTransition as exc:
            raise ApiError(409, "invalid_transition", exc.detail) from None
        except Conflict:
            raise ApiError(409, "conflict", "the request changed concurrently; retry") from None
        await routing().dispatch()
        return record.summary()

    @api.get("/v1/requests/{request_id}", tags=["requests"], responses=ERRORS,
             summary="A request's state, assignment, SLA deadlines and full history (who, when, what, why). "
             "Each read is recorded on kefu.audit.request.read.")
    async def get_request(request_id: REQUEST_ID, who: Staff, request: Request) -> dict[str, Any]:
        record = await record_for(request_id, who, act=False)
        await audit(request, who, "request.read", request_id)
        shown = record.public()
        item = items_now()(record)
        shown["deadlines"] = {name: view.model_dump(mode="json") for name, view in item.deadlines.items()}
        shown["offer_expires_at"] = item.offer_expires_at
        shown["ref"] = item.ref
        return shown

    def items_now() -> Callable[[RequestRecord], WorkItem]:
        """Records as staff see them, all at one instant with one configuration (one context per call)."""
        ctx = routing().context()
        return lambda record: work_item(record, config=ctx.sla, offer_timeout=ctx.offer_timeout, now=ctx.now)

    @api.get("/v1/agents/{agent_id}/work", tags=["agents"], response_model=Work, responses=ERRORS,
             summary="The requests offered to or held by an agent, with subject, deadlines as time left and "
             "when an offer lapses (the agent, their supervisors, admins). Recorded on kefu.audit.agent.work.")
    async def get_work(agent_id: AGENT_ID, who: Staff, request: Request) -> Work:
        found = await routing().store.get_agent(agent_id)
        if found is None or not auth.may_see_agent(who, agent_id=agent_id, department=found[0].department):
            raise ApiError(404, "not_found", f"no agent {agent_id}")
        agent = found[0]
        await audit(request, who, "agent.work", agent_id)
        records = await together(*(routing().store.get(rid) for rid in agent.active))
        item = items_now()
        items = [item(r[0]) for r in records if r is not None and r[0].held_by == agent_id]
        return Work(agent_id=agent_id, status=agent.status, capacity=agent.capacity, items=urgency_order(items))

    @api.get("/v1/floor", tags=["queues"], response_model=Floor, responses=ERRORS,
             summary="Supervisors: every queue of their departments (admins: all) with waiting requests in "
             f"service order (the first {FLOOR_WAITING_SHOWN}; all counted) and held ones, breaches and warnings, "
             "and the departments' agents with status and load. Recorded on kefu.audit.floor.read.")
    async def get_floor(who: Supervisor, request: Request) -> Floor:
        store, config = routing().store, routing().config
        departments = [d for d in config.departments.departments if auth.may_see_department(who, d)]
        await audit(request, who, "floor.read", ",".join(departments)[:200] or "-")
        priorities = [p.value for p in sorted(Priority, key=lambda p: -p.rank)]
        agents = list(store.agents.items.values())
        held_ids = [(rid, a.agent_id) for a in agents for rid in a.active]
        held_found = await together(*(store.get(rid) for rid, _ in held_ids))
        held = [r[0] for (_, agent_id), r in zip(held_ids, held_found, strict=True)
                if r is not None and r[0].held_by == agent_id]
        shown: list[tuple[str, str, int, list[str]]] = []  # department, queue, count, first ids in service order
        for department in departments:
            mine = store.waiting_index.in_department(department)  # the index: not a scan of the whole backlog
            seen = {w.queue for w in mine} | {r.queue for r in held if r.department == department}
            for queue in department_queues(department, priorities=priorities, seen=seen):
                ordered = floor_waiting(mine, queue)
                shown.append((department, queue, len(ordered), [w.request_id for w in ordered[:FLOOR_WAITING_SHOWN]]))
        wanted = [rid for *_, ids in shown for rid in ids]
        waiting_records = {rid: r[0] for rid, r in zip(wanted, await together(*(store.get(rid) for rid in wanted)),
                                                       strict=True) if r is not None}
        floors = []
        item = items_now()
        for department in departments:
            queues = [queue_view(queue, waiting_count=count,
                                 waiting=[item(waiting_records[rid]) for rid in ids if rid in waiting_records],
                                 held=[item(r) for r in held if r.queue == queue and r.department == department])
                      for d, queue, count, ids in shown if d == department]
            staff = sorted((agent_load(a) for a in agents if a.department == department and a.role == "agent"),
                           key=lambda a: a.agent_id)
            floors.append(DepartmentFloor(department=department, queues=queues, agents=staff))
        return Floor(departments=floors)

    @api.put("/v1/agents/{agent_id}/status", tags=["agents"], response_model=Agent, responses=ERRORS,
             summary="Set an agent's status (available / away / offline): the agent themselves, their "
             "supervisors, admins. An agent who becomes available takes waiting requests at once.")
    async def put_status(agent_id: AGENT_ID, body: StatusChange, who: Staff) -> Agent:
        store = routing().store
        found = await store.get_agent(agent_id)
        if found is None or not auth.may_see_agent(who, agent_id=agent_id, department=found[0].department):
            raise ApiError(404, "not_found", f"no agent {agent_id}")
        changed = await store.change_agent(agent_id, lambda a: a.model_copy(update={"status": body.status}))
        await routing().dispatch()  # an agent who came back takes waiting requests now
        return changed or found[0]

    @api.post("/v1/requests/{request_id}/reply", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Answer the customer in the thread: sent on the request's channel (kind: reply; by e-mail "
              "with the thread's Message-IDs and [ref]) and published as kefu.events.request.replied")
    async def reply(request_id: REQUEST_ID, body: Reply, who: Staff) -> RequestSummary:
        return await change(request_id, who, lambda r, c: lc.reply(r, c, actor=who.subject, text=body.text))

    @api.post("/v1/requests/{request_id}/accept", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="An agent accepts the request (first response); also resumes a pending one")
    async def accept(request_id: REQUEST_ID, body: Accept, who: Staff) -> RequestSummary:
        with refusals():
            agent_id = auth.accepting_agent(who, body.agent_id)
        agent = await _known_agent(agent_id)
        if not auth.may_assign_to(who, agent_department=agent.department):
            raise ApiError(403, "forbidden", "that agent is not in your departments")
        return await change(request_id, who, lambda r, c: lc.accept(r, c, agent_id=agent_id))

    @api.post("/v1/requests/{request_id}/note", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Add a note; with to_customer it is a progress update sent through the customer's channel")
    async def note(request_id: REQUEST_ID, body: Note, who: Staff) -> RequestSummary:
        return await change(request_id, who, lambda r, c: lc.note(r, c, actor=who.subject, text=body.text,
                                                                  to_customer=body.to_customer))

    @api.post("/v1/requests/{request_id}/pending", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Wait on the customer: SLA clocks pause until the customer writes again")
    async def pending(request_id: REQUEST_ID, body: Pending, who: Staff) -> RequestSummary:
        return await change(request_id, who, lambda r, c: lc.set_pending(r, c, actor=who.subject, reason=body.reason))

    @api.post("/v1/requests/{request_id}/transfer", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Move to another department, queue or agent, with a reason")
    async def transfer(request_id: REQUEST_ID, body: Transfer, who: Staff) -> RequestSummary:
        record = await record_for(request_id, who, act=True)
        agent = await _known_agent(body.to_agent) if body.to_agent else None
        if agent is not None and not auth.may_assign_to(who, agent_department=agent.department):
            raise ApiError(403, "forbidden", "that agent is not in your departments")
        config = routing().config
        try:
            department, queue = transfer_target(
                current_department=record.department, department=body.department, queue=body.queue, agent=agent,
                departments=config.departments.departments, priorities=[p.value for p in Priority],
                vip_queue=config.departments.vip_queue)
        except TransferRefused as refused:
            raise ApiError(refused.status, refused.error, refused.detail) from None
        moved = department if body.department or department != record.department else None  # a queue may move it
        return await change(request_id, who, lambda r, c: lc.transfer(
            r, c, actor=who.subject, reason=body.reason, department=moved, queue=queue, agent_id=body.to_agent))

    @api.post("/v1/requests/{request_id}/correct", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Correct routing's category or priority, with a reason: published as "
              "kefu.events.request.corrected (old and new values), counted in "
              "kefu_judgement_corrections_total and exported by `kefu corrections export`. A transfer to "
              "another department is recorded as a department correction.")
    async def correct(request_id: REQUEST_ID, body: Correct, who: Staff) -> RequestSummary:
        return await change(request_id, who, lambda r, c: lc.correct(
            r, c, actor=who.subject, reason=body.reason, category=body.category, priority=body.priority))

    @api.post("/v1/requests/{request_id}/escalate", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Escalate to the department's supervisors")
    async def escalate(request_id: REQUEST_ID, body: Escalate, who: Staff) -> RequestSummary:
        return await change(request_id, who, lambda r, c: lc.escalate(r, c, actor=who.subject, reason=body.reason))

    @api.post("/v1/requests/{request_id}/resolve", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Resolve with the resolution, and whether it was solved at first contact")
    async def resolve(request_id: REQUEST_ID, body: Resolve, who: Staff) -> RequestSummary:
        return await change(request_id, who, lambda r, c: lc.resolve(
            r, c, actor=who.subject, resolution=body.resolution, first_contact=body.first_contact))

    @api.post("/v1/requests/{request_id}/close", tags=["requests"], responses=ERRORS,
              response_model=RequestSummary,
              summary="Close")
    async def close(request_id: REQUEST_ID, body: Close, who: Staff) -> RequestSummary:
        return await change(request_id, who, lambda r, c: lc.close(r, c, actor=who.subject, reason=body.reason))

    @api.get("/v1/queues/{queue}", tags=["queues"], responses=ERRORS,
             summary="Waiting requests in the order they will be served, and those held by agents")
    async def get_queue(queue: QUEUE, who: Staff) -> dict[str, Any]:
        store = routing().store
        agent_queues: list[str] = []
        if who.role == "agent":
            me = await store.get_agent(who.subject)
            agent_queues = me[0].queues if me else []
        department = queue.partition(".")[0] if "." in queue else None
        if not auth.may_see_queue(who, queue=queue, department=department, agent_queues=agent_queues):
            raise ApiError(404, "not_found", f"no queue {queue} you may see")
        waiting = [w for w in store.waiting.items.values() if w.queue == queue]
        # held requests by the index on the agents (their mirror, in memory): only this queue's are
        # read, in one round trip (a hold from before the index existed has no queue: read to check)
        candidates = [(request_id, agent.agent_id) for agent in list(store.agents.items.values())
                      for request_id in agent.active if agent.held_in.get(request_id, queue) == queue]
        found = await together(*(store.get(request_id) for request_id, _ in candidates))
        held = [{"request_id": request_id, "agent_id": agent_id, "state": record[0].state,
                 "priority": record[0].priority.value}
                for (request_id, agent_id), record in zip(candidates, found, strict=True)
                if record is not None and record[0].queue == queue and record[0].held_by == agent_id]
        return {
            "queue": queue,
            "waiting": [
                {"position": i, "request_id": w.request_id, "priority": w.priority.value, "emergency": w.emergency,
                 "received_at": instant(w.received_at)}
                for i, w in enumerate(service_order(waiting), 1)
            ],
            "assigned": sorted(held, key=lambda h: h["request_id"]),
        }

    @api.put("/v1/agents/{agent_id}", tags=["agents"], response_model=Agent,
             responses={201: {"model": Agent}, **ERRORS},
             summary="Create or update an agent: department, queues, skills, languages, capacity, status (admins)")
    async def put_agent(agent_id: AGENT_ID, body: AgentProfile, _: Admin, request: Request) -> JSONResponse:
        store = routing().store
        if body.department not in routing().config.departments.departments:
            raise ApiError(422, "invalid_body", f"unknown department {body.department!r}")
        for _attempt in range(10):
            found = await store.get_agent(agent_id)
            held = {"active": found[0].active, "held_in": found[0].held_in} if found else {}
            agent = Agent(agent_id=agent_id, **held, **body.model_dump())
            try:
                await store.put_agent(agent, found[1] if found else None)
                break
            except Conflict:
                continue
        else:
            raise ApiError(409, "conflict", "the agent changed concurrently; retry")
        if found and (found[0].department, found[0].role) != (agent.department, agent.role):
            # the agent's tokens name the old department: void them, a new token has the new scope
            await revoke(request.app.state.runtime, agent_id, reason="profile changed", now=datetime.now(UTC))
        await routing().dispatch()  # an agent who came online or got room takes waiting requests now
        return JSONResponse(agent.model_dump(mode="json"), status_code=200 if found else 201)

    @api.delete("/v1/agents/{agent_id}", tags=["agents"], status_code=204,
                responses={**ERRORS, 204: {"description": "deleted; the agent's tokens no longer work"}},
                summary="Delete an agent and void their tokens (admins). An agent still holding requests "
                "is refused (409): transfer them first.")
    async def delete_agent(agent_id: AGENT_ID, _: Admin, request: Request) -> Response:
        store = routing().store
        found = await store.get_agent(agent_id)
        if found is None:
            raise ApiError(404, "not_found", f"no agent {agent_id}")
        if found[0].active:
            raise ApiError(409, "agent_busy", f"agent {agent_id} holds {len(found[0].active)} requests: "
                           "transfer them (or set the agent offline and let offers expire) first")
        try:
            await store.remove_agent(agent_id, found[1])
        except Conflict:
            raise ApiError(409, "conflict", "the agent changed concurrently; retry") from None
        await revoke(request.app.state.runtime, agent_id, reason="agent deleted", now=datetime.now(UTC))
        return Response(status_code=204)

    @api.post("/v1/tokens/revoke", tags=["access"], response_model=Revoked, responses=ERRORS,
              summary="Void every token a person holds now (admins): a lost device, someone leaving. "
              "Tokens issued afterwards work.")
    async def revoke_tokens(body: RevokeRequest, _: Admin, request: Request) -> Revoked:
        at = await revoke(request.app.state.runtime, body.subject, reason=body.reason, now=datetime.now(UTC))
        return Revoked(subject=body.subject, not_before=datetime.fromtimestamp(at, UTC))

    @api.get("/v1/agents/{agent_id}", tags=["agents"], response_model=Agent, responses=ERRORS,
             summary="An agent's profile and active requests (the agent, their supervisors, admins)")
    async def get_agent(agent_id: AGENT_ID, who: Staff) -> Agent:
        found = await routing().store.get_agent(agent_id)
        if found is None or not auth.may_see_agent(who, agent_id=agent_id, department=found[0].department):
            raise ApiError(404, "not_found", f"no agent {agent_id}")
        return found[0]

    @api.post("/v1/tokens", tags=["access"], response_model=TokenIssued, responses=ERRORS,
              summary="Issue a staff bearer token (admins): an agent's (departments from their profile), "
              "a supervisor's (their departments) or a named admin's")
    async def issue_token(body: TokenRequest, _: Admin, request: Request) -> TokenIssued:
        agent_department = (await _known_agent(body.subject)).department if body.role == "agent" else None
        with refusals():
            principal = auth.staff_principal(subject=body.subject, role=body.role, requested=body.departments,
                                             agent_department=agent_department,
                                             known=routing().config.departments.departments)
        departments = sorted(principal.departments)
        token, expires = auth.issue(staff_key(request), principal, now=datetime.now(UTC),
                                    ttl=timedelta(minutes=body.ttl_minutes))
        return TokenIssued(token=token, subject=body.subject, role=body.role, departments=departments,
                           expires_at=expires)

    async def _known_agent(agent_id: str) -> Agent:
        found = await routing().store.get_agent(agent_id)
        if found is None:
            raise ApiError(422, "invalid_body", f"unknown agent {agent_id!r}")
        return found[0]

    return api
