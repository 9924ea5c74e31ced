"""The endpoints the console needed that routing did not have: an agent's work list, a supervisor's
floor, status changes by the agent or their supervisor, and deadlines as time left. Each is scoped
like the rest of the API and audited; tried by every role, on a real nats-server."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.payloads import payload
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import common_settings, running, tap, two_departments

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
INQUIRY = "请问会员积分怎么查询"  # business.normal
GAS = "家里燃气泄漏了，闻到很大的煤气味"  # an emergency


async def test_work_floor_and_status_are_scoped_by_role_and_audited(nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as r, r.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_AUDIT, s.AUDIT_ALL) as audit:
        tokens = await two_departments(admin, capacity=1)
        a1, q1, sup_b, sup_q = (r.client(tokens[n]) for n in ("a1", "q1", "sup-b", "sup-q"))
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-work-1", text=INQUIRY))
        first = (await events.wait_for(s.REQUEST_ASSIGNED))[0]["request_id"]
        await events.wait_for(s.REQUEST_DISPATCHED, request_id=first)
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-work-2", text=INQUIRY + "？还有积分有效期"))
        second = (await events.wait_for(s.REQUEST_ASSIGNED, count=2))[1]["request_id"]

        work = {name: await c.get("/v1/agents/a1/work") for name, c in
                (("a1", a1), ("q1", q1), ("sup-b", sup_b), ("sup-q", sup_q), ("admin", admin))}
        floors = {name: await c.get("/v1/floor") for name, c in
                  (("a1", a1), ("sup-b", sup_b), ("sup-q", sup_q), ("admin", admin))}
        read = (await a1.get(f"/v1/requests/{first}")).json()
        status = {name: (await c.put("/v1/agents/a1/status", json={"status": "away"})).status_code
                  for name, c in (("q1", q1), ("sup-q", sup_q), ("a1", a1))}
        after_agent = (await admin.get("/v1/agents/a1")).json()["status"]
        by_supervisor = await sup_b.put("/v1/agents/a1/status", json={"status": "available"})
        bad = await a1.put("/v1/agents/a1/status", json={"status": "asleep"})
        await events.wait_for(s.REQUEST_DISPATCHED, count=1)
        audited = await audit.wait_for("kefu.audit.agent.work", count=3)
        audited_floor = await audit.wait_for("kefu.audit.floor.read", count=3)
        for c in (a1, q1, sup_b, sup_q):
            await c.aclose()

    assert {n: resp.status_code for n, resp in work.items()} == {
        "a1": 200, "q1": 404, "sup-b": 200, "sup-q": 404, "admin": 200}
    items = work["a1"].json()["items"]
    assert [i["request_id"] for i in items] == [first] and items[0]["state"] == "offered"
    item = items[0]
    assert item["subject"] == INQUIRY and item["ref"] and item["offer_expires_at"] > item["received_at"]
    assert set(item["deadlines"]) >= {"first_response", "resolution"}
    assert item["deadlines"]["first_response"]["state"] in ("open", "warning")
    assert "customer" not in item and "phone" not in str(item)  # a list shows no contacts

    assert {n: resp.status_code for n, resp in floors.items()} == {"a1": 403, "sup-b": 200, "sup-q": 200, "admin": 200}
    assert [d["department"] for d in floors["sup-b"].json()["departments"]] == ["business"]
    assert [d["department"] for d in floors["sup-q"].json()["departments"]] == ["quality"]
    assert len(floors["admin"].json()["departments"]) == 7
    business = floors["sup-b"].json()["departments"][0]
    normal = next(q for q in business["queues"] if q["queue"] == "business.normal")
    assert [q["queue"] for q in business["queues"]][:3] == ["business.urgent", "business.important", "business.normal"]
    assert normal["waiting_count"] == 1 and [w["request_id"] for w in normal["waiting"]] == [second]
    assert [h["request_id"] for h in normal["held"]] == [first] and normal["held"][0]["agent_id"] == "a1"
    assert business["agents"] == [{"agent_id": "a1", "name": "a1", "status": "available",
                                   "queues": ["business.normal"], "load": 1, "capacity": 1}]
    quality = floors["sup-q"].json()["departments"][0]
    assert all(q["waiting_count"] == 0 and not q["held"] for q in quality["queues"])

    assert read["deadlines"]["first_response"]["due"] == read["sla"]["deadlines"]["first_response"]["due"]
    assert isinstance(read["deadlines"]["resolution"]["left_seconds"], int)
    assert read["offer_expires_at"] is not None
    assert status == {"q1": 404, "sup-q": 404, "a1": 200} and after_agent == "away"
    assert by_supervisor.status_code == 200 and by_supervisor.json()["status"] == "available"
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_body"
    assert sorted(a["actor"] for a in audited) == ["a1", "admin", "sup-b"]
    assert sorted(a["actor"] for a in audited_floor) == ["admin", "sup-b", "sup-q"]
