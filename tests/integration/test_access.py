"""Staff access on a real nats-server: roles, object-level checks on every id, allow-listed writes,
audit records of reads, and the daily cap of messages per customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.payloads import payload
from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.http import auth
from tests.support.services import (
    ADAPTER_KEY,
    ADMIN_TOKEN,
    common_settings,
    running,
    tap,
    two_departments,
    wait_until,
)

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
INQUIRY = "请问会员积分怎么查询"  # business.normal


async def test_agents_and_supervisors_reach_only_their_departments_and_every_read_is_audited(
        nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as r, \
            running(feedback_app, FeedbackSettings(**settings)) as f, r.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_AUDIT, s.AUDIT_ALL) as audit:
        tokens = await two_departments(admin, capacity=1)
        a1, q1, sup_b, sup_q = (r.client(tokens[n]) for n in ("a1", "q1", "sup-b", "sup-q"))
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-acl", text=INQUIRY))
        assigned = (await events.wait_for(s.REQUEST_ASSIGNED))[0]
        rid = assigned["request_id"]
        url = f"/v1/requests/{rid}"

        # reads: own department and its supervisor yes; another department's agent and supervisor: as if absent
        reads = {name: (await c.get(url)).status_code for name, c in
                 (("a1", a1), ("q1", q1), ("sup-b", sup_b), ("sup-q", sup_q), ("admin", admin))}
        audited = await audit.wait_for("kefu.audit.request.read", count=3)

        # actions: the other department cannot act on the id; an agent cannot act as someone else
        foreign = [(await q1.post(f"{url}/{action}", json=body)).status_code for action, body in
                   (("accept", {}), ("note", {"text": "x"}), ("resolve", {"resolution": "x"}),
                    ("transfer", {"reason": "x", "department": "quality"}), ("close", {}))]
        impersonate = await a1.post(f"{url}/accept", json={"agent_id": "q1"})
        # allow-listed fields: a write naming anything else is refused, nothing changes
        mass = await a1.post(f"{url}/resolve", json={"resolution": "ok", "state": "closed", "agent_id": "q1"})
        accepted = await a1.post(f"{url}/accept", json={})
        mass_agent = await admin.put("/v1/agents/a1", json={
            "name": "a1", "department": "business", "active": ["req_aaaaaaaaaaaaaaaaaaaaaaaaaa"]})

        # admin-only and supervisor-only endpoints
        agent_puts_agent = await a1.put("/v1/agents/a9", json={"name": "a9", "department": "business"})
        agent_issues_token = await a1.post("/v1/tokens", json={"subject": "a1", "role": "admin"})
        supervisor_sees_other = await sup_q.get("/v1/agents/a1")
        supervisor_sees_own = await sup_b.get("/v1/agents/a1")
        agent_sees_self, agent_sees_other = (await a1.get("/v1/agents/a1")), (await a1.get("/v1/agents/q1"))
        queue_own, queue_other = (await a1.get("/v1/queues/business.normal")), (await q1.get("/v1/queues/business.normal"))
        async with f.client(tokens["a1"]) as fa1, f.client(tokens["sup-b"]) as fsup:
            sample_by_agent = await fa1.post("/v1/samples/monthly", params={"month": "2026-10"})
            sample_by_supervisor = await fsup.post("/v1/samples/monthly", params={"month": "2026-10"})

        # credentials: expired, tampered, signed with another key, an adapter key on a staff API
        key = auth.signing_key(None, ADMIN_TOKEN)
        expired, _ = auth.issue(key, auth.Principal(subject="a1", role="agent", departments=frozenset({"business"})),
                                now=datetime.now(UTC) - timedelta(days=2), ttl=timedelta(hours=1))
        forged, _ = auth.issue(b"another-key-of-thirty-two-bytes!!", auth.Principal(subject="x", role="admin"), now=datetime.now(UTC),
                               ttl=timedelta(hours=1))
        head, body, sig = tokens["a1"].split(".")
        tampered = ".".join([head, body[:-2] + ("AA" if body[-2:] != "AA" else "BB"), sig])
        refused = {}
        for name, token in (("expired", expired), ("forged", forged), ("tampered", tampered),
                            ("adapter", ADAPTER_KEY)):
            async with r.client(token) as c:
                refused[name] = await c.get(url)
        for c in (a1, q1, sup_b, sup_q):
            await c.aclose()

    assert reads == {"a1": 200, "q1": 404, "sup-b": 200, "sup-q": 404, "admin": 200}
    assert sorted((a["actor"], a["role"], a["object_id"]) for a in audited) == sorted(
        [("a1", "agent", rid), ("sup-b", "supervisor", rid), ("admin", "admin", rid)])
    assert all(a["action"] == "request.read" and a["path"] == url for a in audited)
    assert foreign == [404] * 5
    assert impersonate.status_code == 403
    assert mass.status_code == 422 and "state" in mass.json()["detail"]
    assert accepted.status_code == 200 and accepted.json()["last"] == {
        "at": accepted.json()["last"]["at"], "actor": "a1", "action": "accepted"}
    # a change answers where the request stands, not the customer's data (reads are GET, audited)
    assert not {"request", "history", "resolution", "assignment"} & set(accepted.json())
    assert mass_agent.status_code == 422 and "active" in mass_agent.json()["detail"]
    assert agent_puts_agent.status_code == 403 and agent_issues_token.status_code == 403
    assert supervisor_sees_other.status_code == 404 and supervisor_sees_own.status_code == 200
    assert agent_sees_self.status_code == 200 and agent_sees_other.status_code == 404
    assert queue_own.status_code == 200 and queue_other.status_code == 404
    assert sample_by_agent.status_code == sample_by_supervisor.status_code == 403  # admins only
    assert {n: (resp.status_code, resp.json()["detail"]) for n, resp in refused.items()} == {
        "expired": (401, "token expired"), "forged": (401, "invalid token"), "tampered": (401, "invalid token"),
        "adapter": (401, "invalid token")}
    assert all(resp.headers["www-authenticate"] == "Bearer" for resp in refused.values())


async def test_tokens_are_issued_only_for_known_agents_and_departments(nats_server) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(routing_app, RoutingSettings(**settings)) as r, r.client() as admin:
        ghost = await admin.post("/v1/tokens", json={"subject": "ghost", "role": "agent"})
        no_dept = await admin.post("/v1/tokens", json={"subject": "s1", "role": "supervisor"})
        bad_dept = await admin.post("/v1/tokens", json={"subject": "s1", "role": "supervisor",
                                                          "departments": ["nowhere"]})
        too_long = await admin.post("/v1/tokens", json={"subject": "s1", "role": "admin", "ttl_minutes": 10**6})
        named_admin = await admin.post("/v1/tokens", json={"subject": "ops-li", "role": "admin"})
    assert [x.status_code for x in (ghost, no_dept, bad_dept, too_long)] == [422] * 4
    issued = named_admin.json()
    assert named_admin.status_code == 200 and issued["role"] == "admin" and issued["departments"] == []
    principal = auth.verify(auth.signing_key(None, ADMIN_TOKEN), issued["token"])
    assert principal == auth.Principal(subject="ops-li", role="admin", issued_at=principal.issued_at)
    assert principal.issued_at > 0


async def test_messages_to_one_customer_stop_at_the_daily_cap(nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG, outbound_daily_cap=2)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as r, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        for i in range(4):
            await js.publish("kefu.intake.sms", payload(Channel.sms, f"SM-cap-{i}", text=f"{INQUIRY} {i}"))
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-cap-other", text=INQUIRY,
                                                    contact="13900002222"))
        await events.wait_for(s.REQUEST_ASSIGNED, count=5)
        receipts = await outbound.wait_for("kefu.outbound.sms", count=3, kind="receipt")
        async with r.client() as admin:
            async def held_twice() -> str | None:
                text = (await admin.get("/metrics")).text
                return text if 'kefu_outbound_held_total{kind="receipt"} 2.0' in text else None

            metrics = await wait_until(held_twice, what="held receipts counted")
        held = [float(line.split()[-1]) for line in metrics.splitlines()
                if line.startswith('kefu_outbound_held_total{kind="receipt"}')]
    to = sorted(m["to"]["phone"] for m in receipts)
    assert to == ["+8613900001111", "+8613900001111", "+8613900002222"]
    assert len(outbound.of("kefu.outbound.sms", kind="receipt")) == 3
    assert held == [2.0]

