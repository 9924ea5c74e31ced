"""HTTP edge of routing: agents, the request lifecycle, queues."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.runtime import Admin, ApiError

from .domain import lifecycle as lc
from .domain.dispatch import Agent, AgentProfile, service_order
from .service import NotFound, Routing, Transition
from .store import Conflict

REQUEST_ID = Annotated[str, Path(pattern=r"^req_[a-z2-7]{26}$")]
AGENT_ID = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
QUEUE = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
ACTOR = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The agent or supervisor acting.")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Accept(Body):
    agent_id: str = ACTOR


class Note(Body):
    agent_id: str = ACTOR
    text: str = Field(min_length=1, max_length=4000)
    to_customer: bool = False


class Pending(Body):
    agent_id: str = ACTOR
    reason: str | None = Field(None, max_length=1000)


class Transfer(Body):
    agent_id: str = ACTOR
    reason: str = Field(min_length=1, max_length=1000)
    department: str | None = None
    queue: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    to_agent: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @model_validator(mode="after")
    def _somewhere(self) -> Transfer:
        if not (self.department or self.queue or self.to_agent):
            raise ValueError("name a department, a queue or an agent (to_agent)")
        return self


class Escalate(Body):
    agent_id: str = ACTOR
    reason: str = Field(min_length=1, max_length=1000)


class Resolve(Body):
    agent_id: str = ACTOR
    resolution: str = Field(min_length=1, max_length=8000)
    first_contact: bool = False


class Close(Body):
    agent_id: str = ACTOR
    reason: str | None = Field(None, max_length=1000)


class ErrorBody(BaseModel):
    error: str
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 409, 422)}


def build_api(holder: dict[str, Routing]) -> APIRouter:
    api = APIRouter()

    def routing() -> Routing:
        return holder["routing"]

    async def change(request_id: str, transition: Transition) -> dict[str, Any]:
        try:
            record = await routing().apply(request_id, transition)
        except NotFound:
            raise ApiError(404, "not_found", f"no request {request_id}") from None
        except lc.InvalidTransition as exc:
            raise ApiError(409, "invalid_transition", exc.detail) from None
        except Conflict:
            raise ApiError(409, "conflict", "the request changed concurrently; retry") from None
        await routing().dispatch()
        return record.public()

    @api.get("/v1/requests/{request_id}", tags=["requests"], responses=ERRORS,
             summary="A request's state, assignment, SLA deadlines and full history (who, when, what, why)")
    async def get_request(request_id: REQUEST_ID, _: Admin) -> dict[str, Any]:
        found = await routing().store.get(request_id)
        if found is None:
            raise ApiError(404, "not_found", f"no request {request_id}")
        return found[0].public()

    @api.post("/v1/requests/{request_id}/accept", tags=["requests"], responses=ERRORS,
              summary="An agent accepts the request (first response); also resumes a pending one")
    async def accept(request_id: REQUEST_ID, body: Accept, _: Admin) -> dict[str, Any]:
        await _known_agent(body.agent_id)
        return await change(request_id, lambda r, c: lc.accept(r, c, agent_id=body.agent_id))

    @api.post("/v1/requests/{request_id}/note", tags=["requests"], responses=ERRORS,
              summary="Add a note; with to_customer it is a progress update sent through the customer's channel")
    async def note(request_id: REQUEST_ID, body: Note, _: Admin) -> dict[str, Any]:
        return await change(request_id, lambda r, c: lc.note(r, c, actor=body.agent_id, text=body.text,
                                                             to_customer=body.to_customer))

    @api.post("/v1/requests/{request_id}/pending", tags=["requests"], responses=ERRORS,
              summary="Wait on the customer: SLA clocks pause until the customer writes again")
    async def pending(request_id: REQUEST_ID, body: Pending, _: Admin) -> dict[str, Any]:
        return await change(request_id, lambda r, c: lc.set_pending(r, c, actor=body.agent_id, reason=body.reason))

    @api.post("/v1/requests/{request_id}/transfer", tags=["requests"], responses=ERRORS,
              summary="Move to another department, queue or agent, with a reason")
    async def transfer(request_id: REQUEST_ID, body: Transfer, _: Admin) -> dict[str, Any]:
        departments = routing().config.departments.departments
        if body.department and body.department not in departments:
            raise ApiError(422, "invalid_body", f"unknown department {body.department!r}")
        if body.to_agent:
            await _known_agent(body.to_agent)
        return await change(request_id, lambda r, c: lc.transfer(
            r, c, actor=body.agent_id, reason=body.reason, department=body.department, queue=body.queue,
            agent_id=body.to_agent))

    @api.post("/v1/requests/{request_id}/escalate", tags=["requests"], responses=ERRORS,
              summary="Escalate to the department's supervisors")
    async def escalate(request_id: REQUEST_ID, body: Escalate, _: Admin) -> dict[str, Any]:
        return await change(request_id, lambda r, c: lc.escalate(r, c, actor=body.agent_id, reason=body.reason))

    @api.post("/v1/requests/{request_id}/resolve", tags=["requests"], responses=ERRORS,
              summary="Resolve with the resolution, and whether it was solved at first contact")
    async def resolve(request_id: REQUEST_ID, body: Resolve, _: Admin) -> dict[str, Any]:
        return await change(request_id, lambda r, c: lc.resolve(
            r, c, actor=body.agent_id, resolution=body.resolution, first_contact=body.first_contact))

    @api.post("/v1/requests/{request_id}/close", tags=["requests"], responses=ERRORS, summary="Close")
    async def close(request_id: REQUEST_ID, body: Close, _: Admin) -> dict[str, Any]:
        return await change(request_id, lambda r, c: lc.close(r, c, actor=body.agent_id, reason=body.reason))

    @api.get("/v1/queues/{queue}", tags=["queues"], responses=ERRORS,
             summary="Waiting requests in the order they will be served, and those held by agents")
    async def get_queue(queue: QUEUE, _: Admin) -> dict[str, Any]:
        store = routing().store
        waiting = [w for w in store.waiting.items.values() if w.queue == queue]
        held = []
        for agent_id in list(store.agents.items):
            fresh = await store.get_agent(agent_id)  # the mirror may lag another replica's write
            if fresh is None:
                continue
            agent = fresh[0]
            for request_id in agent.active:
                found = await store.get(request_id)
                if found is not None and found[0].queue == queue and found[0].held_by == agent.agent_id:
                    held.append({"request_id": request_id, "agent_id": agent.agent_id, "state": found[0].state,
                                 "priority": found[0].priority.value})
        return {
            "queue": queue,
            "waiting": [
                {"position": i, "request_id": w.request_id, "priority": w.priority.value, "emergency": w.emergency,
                 "received_at": w.received_at.isoformat()}
                for i, w in enumerate(service_order(waiting), 1)
            ],
            "assigned": sorted(held, key=lambda h: h["request_id"]),
        }

    @api.put("/v1/agents/{agent_id}", tags=["agents"], response_model=Agent,
             responses={201: {"model": Agent}, **ERRORS},
             summary="Create or update an agent: department, queues, skills, languages, capacity, status")
    async def put_agent(agent_id: AGENT_ID, body: AgentProfile, _: Admin) -> JSONResponse:
        store = routing().store
        if body.department not in routing().config.departments.departments:
            raise ApiError(422, "invalid_body", f"unknown department {body.department!r}")
        for _attempt in range(10):
            found = await store.get_agent(agent_id)
            agent = Agent(agent_id=agent_id, active=found[0].active if found else [], **body.model_dump())
            try:
                await store.put_agent(agent, found[1] if found else None)
                break
            except Conflict:
                continue
        else:
            raise ApiError(409, "conflict", "the agent changed concurrently; retry")
        await routing().dispatch()  # an agent who came online or got room takes waiting requests now
        return JSONResponse(agent.model_dump(mode="json"), status_code=200 if found else 201)

    @api.get("/v1/agents/{agent_id}", tags=["agents"], response_model=Agent, responses=ERRORS)
    async def get_agent(agent_id: AGENT_ID, _: Admin) -> Agent:
        found = await routing().store.get_agent(agent_id)
        if found is None:
            raise ApiError(404, "not_found", f"no agent {agent_id}")
        return found[0]

    async def _known_agent(agent_id: str) -> None:
        if await routing().store.get_agent(agent_id) is None:
            raise ApiError(422, "invalid_body", f"unknown agent {agent_id!r}")

    return api
