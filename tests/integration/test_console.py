"""The console service on a real nats-server with the real routing, intake and metrics behind it:
who is signed in, the page's API calls forwarded with the caller's own token (and nothing else
forwarded), and the live stream: scoped per person, resumed from `Last-Event-ID` after a reconnect
and after the console itself restarted, each notice once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.payloads import payload
from services.console.app import create_app as console_app
from services.console.settings import ConsoleSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.metrics.app import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import common_settings, running, tap, two_departments

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
INQUIRY = "请问会员积分怎么查询"  # business.normal
QUALITY = "The jacket's zipper broke the first time I used it. Very disappointed with the quality."  # quality


@dataclass
class Stream:
    """One page's live stream: every notice with its id, in order."""

    notices: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    status: int | None = None

    async def wait_for(self, kind: str, timeout: float = 15, **match: Any) -> tuple[int, dict[str, Any]]:
        def found() -> tuple[int, dict[str, Any]] | None:
            return next(((i, n) for i, k, n in self.notices if k == kind and all(n.get(a) == b for a, b in match.items())),
                        None)
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: found() is not None)
        hit = found()
        assert hit is not None
        return hit

    def about(self, request_id: str) -> list[str]:
        return [k for _, k, n in self.notices if n["request_id"] == request_id]


@asynccontextmanager
async def live(base_url: str, token: str, last_event_id: int | None = None) -> AsyncIterator[Stream]:
    stream = Stream()
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)

    async def read() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=None) as client, \
                client.stream("GET", "/v1/live", headers=headers) as resp:
            stream.status = resp.status_code
            fields: dict[str, str] = {}
            async for line in resp.aiter_lines():
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    async with stream.changed:
                        stream.notices.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                        stream.changed.notify_all()
                fields = {}

    task = asyncio.create_task(read())
    try:
        yield stream
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_console_forwards_the_api_and_streams_only_what_each_person_may_read(nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as routing, \
            running(metrics_app, MetricsSettings(**settings)) as metrics, routing.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        tokens = await two_departments(admin)
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-console-1", text=INQUIRY))
        rid = (await events.wait_for(s.REQUEST_DISPATCHED, agent_id="a1"))[0]["request_id"]
        console_settings = ConsoleSettings(**settings, routing_url=routing.base_url, metrics_url=metrics.base_url,
                                           feedback_url="http://127.0.0.1:9")  # nothing listens: 502
        # the console starts after the offer: a page that saw nothing yet reads it from the log
        async with running(console_app, console_settings) as console, \
                console.client(tokens["a1"]) as a1, console.client(tokens["q1"]) as q1, \
                live(console.base_url, tokens["a1"], last_event_id=0) as a1_live, \
                live(console.base_url, tokens["q1"]) as q1_live, \
                live(console.base_url, tokens["sup-q"]) as sup_live, \
                live(console.base_url, "test-admin-token") as admin_live:
            offered_seq, offered = await a1_live.wait_for("offered", request_id=rid)
            me = (await a1.get("/v1/me")).json()
            work = await a1.get("/v1/agents/a1/work")
            foreign_work = await q1.get("/v1/agents/a1/work")
            read, foreign_read = await a1.get(f"/v1/requests/{rid}"), await q1.get(f"/v1/requests/{rid}")
            accepted = await a1.post(f"/v1/requests/{rid}/accept", json={})
            await a1_live.wait_for("accepted", request_id=rid)
            replied = await a1.post(f"/v1/requests/{rid}/reply", json={"text": "您好，积分在“我的”页面查看。"})
            reply_seq, _ = await a1_live.wait_for("replied", request_id=rid)
            surveys = await a1.get(f"/v1/requests/{rid}/surveys")
            not_forwarded = {path: (await a1.request(method, path, json=body)).status_code for method, path, body in (
                ("POST", "/v1/tokens", {"subject": "a1", "role": "admin"}), ("PUT", "/v1/customers/c1", {"name": "x"}),
                ("GET", "/v1/reports/weekly", None), ("GET", "/v1/requests/%2e%2e/tokens", None))}
            # a request quality may read: seen by q1 and their supervisor, after (so instead of) rid's
            await js.publish("kefu.intake.web", payload(Channel.web, "F-console-q", text=QUALITY))
            qid = (await events.wait_for(s.REQUEST_ASSIGNED, department="quality"))[0]["request_id"]
            await q1_live.wait_for("assigned", request_id=qid)
            await sup_live.wait_for("assigned", request_id=qid)
            await admin_live.wait_for("assigned", request_id=qid)
            found = await a1.get("/v1/requests", params={"ref": rid[4:12].upper()})
            q_assigned = (await events.wait_for(s.REQUEST_ASSIGNED, request_id=qid))[0]
            anonymous = await httpx.AsyncClient(base_url=console.base_url).get("/v1/live")
        # the console restarted: a page reconnecting with its last id gets what came after, once
        async with running(console_app, console_settings) as console, console.client(tokens["a1"]) as a1, \
                live(console.base_url, tokens["a1"], last_event_id=offered_seq) as resumed:
            await a1.post(f"/v1/requests/{rid}/note", json={"text": "客户问积分"})
            await resumed.wait_for("noted", request_id=rid)

    assert me == {"subject": "a1", "role": "agent", "departments": ["business"]}
    assert work.status_code == 200 and [i["request_id"] for i in work.json()["items"]] == [rid]
    assert foreign_work.status_code == 404 and foreign_read.status_code == 404
    assert read.status_code == 200 and read.json()["ref"] == rid[4:12].upper()
    assert accepted.status_code == replied.status_code == 200
    assert surveys.status_code == 502 and surveys.json()["error"] == "upstream_unavailable"
    assert not_forwarded == {"/v1/tokens": 403, "/v1/customers/c1": 404, "/v1/reports/weekly": 404,
                             "/v1/requests/%2e%2e/tokens": 404}  # tokens: forwarded, and routing refuses an agent
    assert found.status_code == 200 and [f["request_id"] for f in found.json()["requests"]] in ([rid], [])
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    # scoped: another department's agent and supervisor never hear of rid; the admin hears everything
    assert q1_live.about(rid) == [] and sup_live.about(rid) == []
    assert "business" not in q_assigned["co_departments"]
    assert "assigned" in q1_live.about(qid) and a1_live.about(qid) == []
    assert set(admin_live.about(rid)) >= {"accepted", "replied"}
    # notices carry no customer data, only what happened to which request
    assert set(offered) <= {"kind", "request_id", "at", "agent_id", "emergency", "priority", "sla"}
    assert offered["agent_id"] == "a1"
    # each notice once, in the log's order; the resumed stream starts after the id it was given
    ids = [i for i, _, _ in a1_live.notices]
    assert ids == sorted(set(ids))
    resumed_ids = [i for i, _, _ in resumed.notices]
    assert resumed_ids == sorted(set(resumed_ids)) and min(resumed_ids) > offered_seq
    assert resumed.about(rid)[:2] == ["accepted", "replied"] and "noted" in resumed.about(rid)
    assert reply_seq in resumed_ids
