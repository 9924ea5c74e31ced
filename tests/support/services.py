"""Run a kefu service in-process over a real socket, and watch what it publishes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import uvicorn
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from devtools.natsserver import free_port
from shared.nats.topology import provision
from shared.settings import KefuSettings

ADMIN_TOKEN = "test-admin-token"
ADAPTER_KEY = "test-adapter-key"
SURVEY_SECRET = "test-survey-secret"


def common_settings(nats_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "nats_url": nats_url,
        "admin_token": ADMIN_TOKEN,
        "adapter_keys": f"tests:{ADAPTER_KEY}",
        "ack_wait_seconds": 5,
        "retry_backoff_seconds": (0.1, 0.2, 0.5),
        "survey_secret": SURVEY_SECRET,
        # tests reuse a few phone numbers on one server; the cap itself is tested with a small value
        "outbound_daily_cap": 10_000,
        "outbound_automatic_per_hour": 10_000,
        # ... and send many separate requests from one test contact: threading by contact is off
        # unless a test turns it on (tests/integration/test_conversations.py does, with the default)
        "conversation_windows": "",
        **extra,
    }


@dataclass
class RunningService:
    base_url: str
    app: Any
    server: uvicorn.Server
    task: asyncio.Task[None]

    def client(self, token: str = ADMIN_TOKEN) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )


async def staff_token(admin: httpx.AsyncClient, subject: str, role: str = "agent",
                      departments: list[str] | None = None) -> str:
    """A staff bearer token issued by routing's `POST /v1/tokens` (admin client of routing)."""
    body: dict[str, Any] = {"subject": subject, "role": role}
    if departments is not None:
        body["departments"] = departments
    response = await admin.post("/v1/tokens", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def put_agent(admin: httpx.AsyncClient, agent_id: str, department: str = "business",
                    **fields: Any) -> dict[str, Any]:
    """Create or update an agent through routing's `PUT /v1/agents/{id}` (admin client): named by
    its id, in `<department>.normal`, available, room for two, unless `fields` say otherwise."""
    body = {"name": agent_id, "department": department, "queues": [f"{department}.normal"], "capacity": 2,
            "status": "available"} | fields
    response = await admin.put(f"/v1/agents/{agent_id}", json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def two_departments(admin: httpx.AsyncClient, **agent_fields: Any) -> dict[str, str]:
    """The staff the access tests need, their tokens by name: agents a1 (business) and q1 (quality)
    with `agent_fields`, and a supervisor of each department, sup-b and sup-q."""
    for agent_id, department in (("a1", "business"), ("q1", "quality")):
        await put_agent(admin, agent_id, department, **agent_fields)
    tokens = {name: await staff_token(admin, name) for name in ("a1", "q1")}
    for name, department in (("sup-b", "business"), ("sup-q", "quality")):
        tokens[name] = await staff_token(admin, name, "supervisor", [department])
    return tokens


@asynccontextmanager
async def running(create_app: Callable[[Any], Any], settings: Any) -> AsyncIterator[RunningService]:
    settings.http_port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.http_port, log_config=None, lifespan="on",
                       timeout_graceful_shutdown=settings.graceful_shutdown_seconds())
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError("server exited during start-up")
        await asyncio.sleep(0.01)
    try:
        yield RunningService(f"http://127.0.0.1:{settings.http_port}", app, server, task)
    finally:
        server.should_exit = True
        await task


@dataclass
class Tap:
    """Everything published on the given subjects, from the stream's start, in order."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_msg(self, msg: Msg) -> None:
        async with self.changed:
            self.messages.append((msg.subject, json.loads(msg.data)))
            self.changed.notify_all()

    def of(self, subject: str, **match: Any) -> list[dict[str, Any]]:
        return [
            body for subj, body in self.messages
            if subj == subject and all(body.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, subject: str, count: int = 1, timeout: float = 15.0, **match: Any) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]]:
            async with self.changed:
                await self.changed.wait_for(lambda: len(self.of(subject, **match)) >= count)
                return self.of(subject, **match)

        try:
            return await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            seen = [(s, {k: b.get(k) for k in ("request_id", "reason", "channel")}) for s, b in self.messages]
            raise AssertionError(f"no {count}x {subject} {match} within {timeout}s; saw {seen}") from None


@asynccontextmanager
async def tap(nats_url: str, stream: str, subjects: str) -> AsyncIterator[Tap]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision(js, KefuSettings())  # idempotent: the streams exist whoever starts first
    t = Tap()
    sub = await js.subscribe(
        subjects, cb=t.on_msg, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL, stream=stream
    )
    try:
        yield t
    finally:
        await sub.unsubscribe()
        await nc.close()


async def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll an (async or plain) predicate until it is truthy; for state that publishes no event."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def publish_retrying(js: Any, subject: str, data: bytes, msg_id: str, timeout: float = 30.0) -> Any:
    """What a well-behaved adapter does: retry the JetStream publish with the same Nats-Msg-Id
    until it is acknowledged (e.g. while the server is restarting and JetStream recovers)."""
    import nats.errors
    import nats.js.errors

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await js.publish(subject, data, timeout=1.0, headers={"Nats-Msg-Id": msg_id})
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.js.errors.ServiceUnavailableError,
                nats.js.errors.NoStreamResponseError, nats.js.errors.APIError) as exc:
            # 409 err_code 10158 "duplicate message id is in process": a cluster still committing the
            # same id's earlier try (a node just died); any other API error is the adapter's fault
            retryable = (nats.errors.TimeoutError, nats.errors.ConnectionClosedError,
                         nats.js.errors.ServiceUnavailableError, nats.js.errors.NoStreamResponseError)
            if not isinstance(exc, retryable) and getattr(exc, "err_code", None) != 10158:
                raise
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
