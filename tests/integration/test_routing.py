"""Routing on a real nats-server: agents and capacity, replicas, timeouts, SLA timers, lifecycle API."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from devtools.payloads import payload
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.nats.timers import fired_subject
from tests.support.services import ADMIN_TOKEN, common_settings, running, staff_token, tap, wait_until

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
INQUIRY = "请问会员积分怎么查询"  # business.normal
LISTING: contextvars.ContextVar[bool] = contextvars.ContextVar("listing", default=False)


@pytest.fixture
def make_config(tmp_path: Path):
    def make(**files: str) -> Path:
        target = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}"
        shutil.copytree(CONFIG, target)
        for name, text in files.items():
            (target / f"{name}.yaml").write_text(text)
        return target

    return make


def services(nats_url: str, config_dir: Path):
    def intake():
        return running(intake_app, IntakeSettings(**common_settings(nats_url, config_dir=config_dir)))

    def routing():
        return running(routing_app, RoutingSettings(**common_settings(nats_url, config_dir=config_dir)))

    return intake, routing


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return [value] if isinstance(value, str) else []


async def put_agent(http, agent_id: str, **fields) -> dict:
    body = {"name": agent_id, "department": "business", "queues": ["business.normal"], "capacity": 2,
            "status": "available", "languages": ["zh", "en"]} | fields
    resp = await http.put(f"/v1/agents/{agent_id}", json=body)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


async def test_capacity_is_never_exceeded_and_two_replicas_never_offer_a_request_twice(
        nats_server, make_config, js) -> None:
    intake, routing = services(nats_server.url, make_config())
    async with (intake(), routing() as r1, routing() as r2, r1.client() as http,
                tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events):
        for agent_id in ("a1", "a2", "a3"):
            await put_agent(http, agent_id)
        await asyncio.gather(*(js.publish("kefu.intake.sms", payload(Channel.sms, f"SM-cap-{i}", text=INQUIRY,
                                                                     contact=f"1390000{i:04d}"))
                               for i in range(20)))
        dispatched = await events.wait_for("kefu.events.request.dispatched", count=6)
        await events.wait_for(s.REQUEST_ASSIGNED, count=20)
        agents = [(await http.get(f"/v1/agents/{a}")).json() for a in ("a1", "a2", "a3")]
        assert all(len(a["active"]) <= a["capacity"] for a in agents)
        # a1 frees a place: exactly one more offer, from either replica
        first = next(d for d in dispatched if d["agent_id"] == "a1")
        async with r2.client() as http2:
            assert (await http2.post(f"/v1/requests/{first['request_id']}/accept", json={"agent_id": "a1"})).status_code == 200
            resolved = await http2.post(f"/v1/requests/{first['request_id']}/resolve",
                                        json={"resolution": "已答复", "first_contact": True})
        assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
        await events.wait_for("kefu.events.request.dispatched", count=7)
        queue = (await http.get("/v1/queues/business.normal")).json()
        final_agents = [(await http.get(f"/v1/agents/{a}")).json() for a in ("a1", "a2", "a3")]
    offered = [d["request_id"] for d in events.of("kefu.events.request.dispatched")]
    assert len(offered) == len(set(offered)) == 7
    assert len(queue["waiting"]) == 13 and len(queue["assigned"]) == 6
    assert [w["position"] for w in queue["waiting"]] == list(range(1, 14))
    held = [r for a in final_agents for r in a["active"]]
    assert len(held) == len(set(held)) == 6 and all(len(a["active"]) <= a["capacity"] for a in final_agents)


async def test_vip_request_goes_to_the_account_manager(nats_server, make_config, js) -> None:
    intake, routing = services(nats_server.url, make_config())
    async with intake() as i, routing() as r, i.client() as intake_http, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        await put_agent(http, "am-7", department="customer_service", queues=[])
        await put_agent(http, "b1", queues=["vip"])
        await intake_http.put("/v1/customers/c-vip", json={"phones": ["13900001111"], "tier": "vip",
                                                            "account_manager": "am-7"})
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-vip-1", text=INQUIRY))
        assigned = (await events.wait_for(s.REQUEST_ASSIGNED))[0]
        dispatched = (await events.wait_for("kefu.events.request.dispatched"))[0]
    assert assigned["queue"] == "vip" and assigned["tier"] == "vip"
    assert assigned["agent_id"] == dispatched["agent_id"] == "am-7"


async def test_unaccepted_offer_moves_to_the_next_agent_then_escalates_to_the_supervisor(
        nats_server, make_config, js) -> None:
    config = make_config(routing="offer_timeout: 1s\nmax_offers: 2\ndispatch_interval: 1s\nskills_by_topic: {}\n")
    intake, routing = services(nats_server.url, config)
    async with intake(), routing() as r, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        await put_agent(http, "a1")
        await put_agent(http, "a2")
        await put_agent(http, "sup", role="supervisor", queues=[])
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-timeout", text=INQUIRY))
        offers = await events.wait_for("kefu.events.request.dispatched", count=3, timeout=20)
        escalated = (await events.wait_for(s.REQUEST_ESCALATED))[0]
        alert = (await outbound.wait_for("kefu.outbound.supervisor.business"))[0]
        record = (await http.get(f"/v1/requests/{escalated['request_id']}")).json()
    assert [o["agent_id"] for o in offers] == ["a1", "a2", "sup"]
    assert escalated["reason"] == "not_accepted" and alert["reason"] == "not_accepted"
    assert record["state"] == "offered" and record["agent_id"] == "sup" and record["declined_by"] == ["a1", "a2"]
    actions = [h["action"] for h in record["history"]]
    assert actions.count("offer_expired") == 2 and "escalated" in actions


SHORT_SLA = """
business_hours: {opens: "09:00", closes: "18:00", timezone: Asia/Shanghai, calendar: chinese}
warning_share: 0.5
breach_notice_extension: 1h
policies:
  - {name: test, match: {}, clock: 24x7, first_response: 2s, resolution: 3s}
"""


async def test_sla_warning_and_breach_fire_on_time_and_the_customer_hears_why(nats_server, make_config, js) -> None:
    intake, routing = services(nats_server.url, make_config(sla=SHORT_SLA))
    async with intake(), routing(), tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-sla", text=INQUIRY))
        warnings = await events.wait_for(s.SLA_WARNING, count=2)
        breaches = await events.wait_for(s.SLA_BREACHED, count=2)
        notice = await outbound.wait_for("kefu.outbound.sms", kind="notice")
    assert {w["sla"] for w in warnings} == {b["sla"] for b in breaches} == {"first_response", "resolution"}
    for b in breaches:
        late = datetime.fromisoformat(b["occurred_at"]) - datetime.fromisoformat(b["due"])
        assert 0 <= late.total_seconds() < 1.0, late  # within a second of the deadline
    assert "ref" in notice[0]["text"] or "编号" in notice[0]["text"]


async def test_a_deadline_passing_while_routing_is_down_is_reported_when_it_restarts(
        nats_server, make_config, js) -> None:
    sla = SHORT_SLA.replace("first_response: 2s, resolution: 3s", "first_response: 1s, resolution: 1h")
    intake, routing = services(nats_server.url, make_config(sla=sla))
    async with intake(), tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        async with routing():
            await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-restart", text=INQUIRY))
            assigned = (await events.wait_for(s.REQUEST_ASSIGNED))[0]
        rid = assigned["request_id"]
        # routing is down; the server fires the stored schedule (the next SLA moment) all the same
        await wait_until(lambda: _fired(js, fired_subject("routing", rid, "first_response.warning")),
                         what="warning fired")
        assert events.of(s.SLA_WARNING) == [] and events.of(s.SLA_BREACHED) == []
        async with routing():  # handles the warning, schedules the breach (already due: fires at once)
            warned = (await events.wait_for(s.SLA_WARNING, request_id=rid))[0]
            breached = (await events.wait_for(s.SLA_BREACHED, request_id=rid))[0]
    assert warned["sla"] == breached["sla"] == "first_response"
    assert breached["due"] == assigned["due"]["first_response"]


async def _fired(js, subject: str) -> bool:
    import nats.js.errors

    try:
        await js.get_last_msg(s.STREAM_TIMERS_ROUTING, subject)
        return True
    except nats.js.errors.NotFoundError:
        return False


async def test_emergency_is_escalated_at_once_and_served_before_older_requests(nats_server, make_config, js) -> None:
    intake, routing = services(nats_server.url, make_config())
    async with intake(), routing() as r, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        await js.publish("kefu.intake.app", payload(Channel.app, "e-old", text="APP打不开，一直闪退"))
        await js.publish("kefu.intake.wechat", payload(Channel.wechat, "9001", text="家里燃气泄漏了，闻到煤气味"))
        assigned = await events.wait_for(s.REQUEST_ASSIGNED, count=2)
        escalated = (await events.wait_for(s.REQUEST_ESCALATED))[0]
        alert = (await outbound.wait_for(f"kefu.outbound.supervisor.{assigned[1]['department']}"))[0]
        # one agent with room for one comes online for both queues: the emergency goes first
        queues = sorted({a["queue"] for a in assigned})
        await put_agent(http, "ops-1", department="after_sales", queues=queues, capacity=1)
        first = (await events.wait_for("kefu.events.request.dispatched"))[0]
    emergency = next(a for a in assigned if a["emergency"])
    assert escalated["request_id"] == emergency["request_id"] and escalated["reason"] == "emergency"
    assert alert["emergency"] is True
    assert first["request_id"] == emergency["request_id"]


async def test_lifecycle_api_with_pending_resumed_by_the_customers_reply(nats_server, make_config, js) -> None:
    intake, routing = services(nats_server.url, make_config())
    async with intake(), routing() as r, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        await put_agent(http, "a1")
        a1 = r.client(await staff_token(http, "a1"))
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-life", text=INQUIRY))
        rid = (await events.wait_for("kefu.events.request.dispatched"))[0]["request_id"]
        url = f"/v1/requests/{rid}"
        assert (await a1.post(f"{url}/accept", json={})).json()["state"] == "accepted"
        await a1.post(f"{url}/note", json={"text": "正在为您查询积分明细", "to_customer": True})
        progress = (await outbound.wait_for("kefu.outbound.sms", kind="progress"))[0]
        pending = await a1.post(f"{url}/pending", json={"reason": "需要会员卡号"})
        assert pending.json()["state"] == "pending" and pending.json()["sla"]["paused_since"]
        # the customer answers by SMS: a new message from the same number resumes the request
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-life-reply", text="卡号 88001234"))
        resumed = (await events.wait_for("kefu.events.request.resumed", request_id=rid))[0]
        resolved = await a1.post(f"{url}/resolve", json={"resolution": "积分已补发", "first_contact": False})
        closed_again = await a1.post(f"{url}/resolve", json={"resolution": "x"})
        closed = await http.post(f"{url}/close", json={})
        after_close = await a1.post(f"{url}/accept", json={})
        unknown = await a1.post("/v1/requests/req_aaaaaaaaaaaaaaaaaaaaaaaaaa/accept", json={})
        bad_transfer = await a1.post(f"{url}/transfer", json={"reason": "x"})
        unknown_agent = await http.post(f"{url}/accept", json={"agent_id": "ghost"})
        bad_id = await http.get("/v1/requests/not-a-request-id")
        record = (await http.get(url)).json()
        agent = (await http.get("/v1/agents/a1")).json()
        await events.wait_for(s.REQUEST_CLOSED, request_id=rid)
    assert progress["text"] == "正在为您查询积分明细" and progress["to"] == {"phone": "+8613900001111"}
    assert resumed["reason"].startswith("customer wrote again")
    assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
    assert closed_again.status_code == 409 and closed_again.json()["error"] == "invalid_transition"
    assert closed.json()["state"] == "closed" and after_close.status_code == 409
    assert unknown.status_code == 404 and bad_transfer.status_code == 422 and unknown_agent.status_code == 422
    assert bad_id.status_code == 422
    assert [h["action"] for h in record["history"]] == [
        "received", "assigned", "offered", "accepted", "note", "pending", "resumed", "resolved", "closed"]
    # one convention for instants (docs/operations.md#time): SLA deadlines computed on the local
    # calendar came back as +08:00 beside +00:00 history times
    instants = [v for v in strings_in(record) if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d", v)]
    assert len(instants) > 10 and all(v.endswith("+00:00") for v in instants), instants
    assert record["history"][4]["actor"] == "a1" and record["history"][4]["detail"]["to_customer"] is True
    assert rid not in agent["active"]  # (the reply itself is a new request, which a1 may hold)
    resolved_event = events.of(s.REQUEST_RESOLVED, request_id=rid)[0]
    assert (resolved_event["department"], resolved_event["priority"], resolved_event["tier"]) == (
        "business", "normal", "standard")  # where it stands when resolved, for feedback
    kinds = [subject.rsplit(".", 1)[-1] for subject, body in events.messages if body.get("request_id") == rid]
    assert kinds == ["received", "assigned", "dispatched", "accepted", "noted", "pending", "resumed", "resolved", "closed"]


async def test_a_queue_listing_reads_only_the_requests_held_in_that_queue(nats_server, make_config, js) -> None:
    """The probe: every listing read every agent and every held request (one KV get each)."""
    intake, routing = services(nats_server.url, make_config())
    async with intake(), routing() as r, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        for n in range(8):
            await put_agent(http, f"a{n}", capacity=1)
        await asyncio.gather(*(js.publish("kefu.intake.sms", payload(Channel.sms, f"SM-idx-{i}", text=INQUIRY,
                                                                     contact=f"1391111{i:04d}"))
                               for i in range(8)))
        await events.wait_for("kefu.events.request.dispatched", count=8)
        store = r.app.state.runtime.service.store
        reads: list[str] = []
        for name in ("get", "get_agent"):
            real = getattr(store, name)

            async def counting(key, _real=real, _name=name):
                if LISTING.get():  # the listing's reads (tasks it starts inherit this), not the background's
                    reads.append(_name)
                return await _real(key)

            setattr(store, name, counting)

        async def reads_for(path: str) -> tuple[dict, int]:
            reads.clear()
            LISTING.set(True)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=r.app), base_url="http://routing",
                                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as direct:
                listing = (await direct.get(path)).json()  # handled in this task
            return listing, len(reads)

        other, reads_other = await reads_for("/v1/queues/business.urgent")
        own, reads_own = await reads_for("/v1/queues/business.normal")
    assert other["assigned"] == [] and reads_other == 0
    assert len(own["assigned"]) == 8 and reads_own == 8  # the 8 held requests only, no agent records


async def test_every_instant_comes_back_in_utc_whatever_offset_the_channel_used(nats_server, make_config, js) -> None:
    """The probe: due times came back as +08:00 beside +00:00 (a call stamped in local time)."""
    intake, routing = services(nats_server.url, make_config())
    local = datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0)
    call = {"call_id": "C-utc", "caller": "13900001111", "called": "95555", "started_at": local.isoformat(),
            "transcript": "请问会员积分怎么查询"}
    async with intake(), routing() as r, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        await js.publish("kefu.intake.phone", json.dumps(call, ensure_ascii=False).encode())
        rid = (await events.wait_for(s.REQUEST_ASSIGNED))[0]["request_id"]
        record = (await http.get(f"/v1/requests/{rid}")).json()
    instants = [v for v in strings_in(record) + strings_in([e for _, e in events.messages])
                if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d", v)]
    assert record["request"]["received_at"] == local.astimezone(UTC).isoformat()
    assert len(instants) > 5 and all(v.endswith("+00:00") for v in instants), instants
