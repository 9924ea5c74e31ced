"""What the independent probe did through ordinary staff APIs, tried again: a transfer that
skipped the rules accept enforces, and tokens that outlived the agent's department or the agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.payloads import payload
from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.metrics.app import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import common_settings, put_agent, running, staff_token, tap

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
INQUIRY = "请问会员积分怎么查询"  # business.normal


async def test_a_transfer_goes_only_where_routing_itself_could_send_it(nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as r, r.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        await put_agent(admin, "b1", "business", capacity=0)  # holds nothing: the request waits in the queue
        await put_agent(admin, "b2", "business", status="offline")
        await put_agent(admin, "b3", "business")
        await put_agent(admin, "q1", "quality")
        sup_b = r.client(await staff_token(admin, "sup-b", "supervisor", ["business"]))
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-transfer", text=INQUIRY))
        rid = (await events.wait_for(s.REQUEST_ASSIGNED))[0]["request_id"]
        url = f"/v1/requests/{rid}/transfer"
        tries = {
            # the probe: a business supervisor handing the request to a quality agent, and to a made-up queue
            "other department's agent": await sup_b.post(url, json={"reason": "x", "to_agent": "q1"}),
            "made-up queue": await sup_b.post(url, json={"reason": "x", "queue": "void"}),
            "unknown priority": await sup_b.post(url, json={"reason": "x", "queue": "business.someday"}),
            "queue of another department": await sup_b.post(url, json={"reason": "x", "department": "business",
                                                                       "queue": "quality.normal"}),
            "offline agent": await sup_b.post(url, json={"reason": "x", "to_agent": "b2"}),
            "agent without room": await sup_b.post(url, json={"reason": "x", "to_agent": "b1"}),
            # even an admin cannot put the request in business with a quality agent holding it
            "admin, agent outside the department": await admin.post(url, json={"reason": "x", "to_agent": "q1"}),
        }
        before = (await admin.get(f"/v1/requests/{rid}")).json()
        to_b3 = await sup_b.post(url, json={"reason": "熟悉该会员", "to_agent": "b3"})
        to_quality = await sup_b.post(url, json={"reason": "产品质量问题", "queue": "quality.normal"})
        await sup_b.aclose()
    assert {name: (resp.status_code, resp.json()["error"]) for name, resp in tries.items()} == {
        "other department's agent": (403, "forbidden"),
        "made-up queue": (422, "invalid_body"),
        "unknown priority": (422, "invalid_body"),
        "queue of another department": (422, "invalid_body"),
        "offline agent": (409, "agent_unavailable"),
        "agent without room": (409, "agent_unavailable"),
        "admin, agent outside the department": (422, "invalid_body"),
    }
    assert before["queue"] == "business.normal" and "transferred" not in [h["action"] for h in before["history"]]
    assert to_b3.status_code == 200 and to_b3.json()["agent_id"] == "b3"
    assert to_quality.status_code == 200
    assert (to_quality.json()["department"], to_quality.json()["queue"]) == ("quality", "quality.normal")


async def test_tokens_die_with_the_agents_department_or_the_agent_in_every_service(nats_server) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(routing_app, RoutingSettings(**settings)) as r, \
            running(feedback_app, FeedbackSettings(**settings)) as f, \
            running(metrics_app, MetricsSettings(**settings)) as m, r.client() as admin:
        await put_agent(admin, "a1", "business")
        await put_agent(admin, "a2", "business")
        old_a1, a2_token = await staff_token(admin, "a1"), await staff_token(admin, "a2")
        sup = await staff_token(admin, "sup-x", "supervisor", ["business"])
        async with r.client(old_a1) as a1:
            before = (await a1.get("/v1/queues/business.normal")).status_code
            # the probe: moved to quality and set offline, the old token still read business for 7 days
            await put_agent(admin, "a1", "quality", status="offline")
            after_move = await a1.get("/v1/queues/business.normal")
            still_self = await a1.get("/v1/agents/a1")
        async with r.client(await staff_token(admin, "a1")) as a1_new:
            new_scope = [(await a1_new.get(f"/v1/queues/{q}")).status_code for q in ("quality.normal", "business.normal")]
        # deleting an agent voids their tokens; a status change alone does not
        await put_agent(admin, "a2", "business", status="away")
        async with r.client(a2_token) as a2:
            away = (await a2.get("/v1/agents/a2")).status_code
            deleted = await admin.delete("/v1/agents/a2")
            after_delete = await a2.get("/v1/agents/a2")
        gone = await admin.get("/v1/agents/a2")
        unknown = await admin.delete("/v1/agents/a2")
        # an admin voids a supervisor's tokens: refused in feedback and metrics as well as routing
        async with f.client(sup) as in_feedback, m.client(sup) as in_metrics:
            reports_before = (await in_metrics.get("/v1/reports/monthly", params={"month": "2026-11"})).status_code
            revoked = await admin.post("/v1/tokens/revoke", json={"subject": "sup-x", "reason": "left the company"})
            refused = [await in_feedback.post("/v1/samples/monthly", params={"month": "2026-10"}),
                       await in_metrics.get("/v1/reports/monthly", params={"month": "2026-11"})]
        async with m.client(await staff_token(admin, "sup-x", "supervisor", ["business"])) as reissued:
            reports_after = (await reissued.get("/v1/reports/monthly", params={"month": "2026-11"})).status_code
    assert before == 200
    assert (after_move.status_code, after_move.json()["detail"]) == (401, "token revoked")
    assert still_self.status_code == 401
    assert new_scope == [200, 404]
    assert away == 200 and deleted.status_code == 204
    assert (after_delete.status_code, after_delete.json()["detail"]) == (401, "token revoked")
    assert gone.status_code == 404 and unknown.status_code == 404
    assert reports_before == 200 and revoked.status_code == 200
    assert [(x.status_code, x.json()["detail"]) for x in refused] == [(401, "token revoked")] * 2
    assert reports_after == 200


async def test_an_agent_still_holding_requests_cannot_be_deleted(nats_server, js) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as r, r.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        await put_agent(admin, "a1", "business")
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-busy", text=INQUIRY))
        await events.wait_for("kefu.events.request.dispatched")
        busy = await admin.delete("/v1/agents/a1")
        still = await admin.get("/v1/agents/a1")
    assert (busy.status_code, busy.json()["error"]) == (409, "agent_busy")
    assert still.status_code == 200 and still.json()["active"]
