"""The customer directory: a request from any known contact carries the customer and tier."""

from __future__ import annotations

import pytest

from devtools.payloads import payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.integration.conftest import pipeline
from tests.support.services import ADAPTER_KEY

pytestmark = pytest.mark.integration


async def test_registered_vip_is_recognised_on_every_channel(start, events, js) -> None:
    async with pipeline(start) as (intake, _), intake.client() as admin:
        put = await admin.put("/v1/customers/c-1001", json={
            "name": "张伟", "phones": ["+86 139 0000 1111"], "emails": ["Zhang.Wei@Example.CN"],
            "wechat_openids": ["oUpF8uMuAJO_M2pxb1Q9"], "tier": "vip", "account_manager": "agent-7",
        })
        # the same customer updated: the email is dropped, the phone given in another format
        again = await admin.put("/v1/customers/c-1001", json={
            "name": "张伟", "phones": ["13900001111"], "wechat_openids": ["oUpF8uMuAJO_M2pxb1Q9"], "tier": "vip",
        })
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-vip", contact="13900001111"))
        await js.publish("kefu.intake.wechat", payload(Channel.wechat, "777", text="请问积分怎么查询"))
        await js.publish("kefu.intake.app", payload(Channel.app, "e-stranger", contact="13100009999"))
        received = await events.wait_for(s.REQUEST_RECEIVED, count=3)
        assigned = await events.wait_for(s.REQUEST_ASSIGNED, count=3)
        fetched = await admin.get("/v1/customers/c-1001")
    assert put.status_code == 201 and put.json()["phones"] == ["+8613900001111"]
    assert put.json()["emails"] == ["zhang.wei@example.cn"]
    assert again.status_code == 200 and fetched.json()["emails"] == []  # the email was dropped
    by_source = {r["source_id"]: r for r in received}
    for source in ("SM-vip", "777"):
        customer = by_source[source]["customer"]
        assert customer["customer_id"] == "c-1001" and customer["tier"] == "vip" and customer["registered"]
    stranger = by_source["e-stranger"]["customer"]
    assert stranger["customer_id"].startswith("anon-") and stranger["tier"] == "standard"
    vip_queue = {a["request_id"]: a["queue"] for a in assigned}
    assert vip_queue[by_source["777"]["request_id"]] == "vip"


async def test_a_dropped_contact_no_longer_identifies_the_customer(start, events, js) -> None:
    async with pipeline(start) as (intake, _), intake.client() as admin:
        await admin.put("/v1/customers/c-2", json={"phones": ["13900001111"], "emails": ["a@b.cn"], "tier": "vip"})
        await admin.put("/v1/customers/c-2", json={"emails": ["a@b.cn"], "tier": "vip"})
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-x", contact="13900001111"))
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
    assert received["customer"]["customer_id"].startswith("anon-")


@pytest.mark.parametrize(
    "body",
    [{"phones": ["not a phone"]}, {"emails": ["nope"]}, {"tier": "gold"}, {"unknown_field": 1},
     {"name": "a\r\nb"}, {"account_manager": "../x"}],
)
async def test_invalid_customer_bodies_are_422(start, body) -> None:
    async with start["intake"]() as intake, intake.client() as admin:
        resp = await admin.put("/v1/customers/c-3", json=body)
        missing = await admin.get("/v1/customers/nobody")
    assert resp.status_code == 422 and resp.json()["error"] == "invalid_body"
    assert missing.status_code == 404


async def test_a_contact_typed_into_a_web_form_does_not_make_the_sender_someone_else(start, events, outbound,
                                                                                    js) -> None:
    """The probe: a web form with a registered VIP's phone and the attacker's email was taken for
    the VIP (queued ahead, offered to their account manager) and the receipt went to both."""
    async with pipeline(start) as (intake, _), intake.client() as admin, intake.client(ADAPTER_KEY) as adapter:
        await admin.put("/v1/customers/c-vip", json={"name": "王总", "phones": ["13900002222"], "tier": "vip",
                                                     "account_manager": "am-1"})
        form = {"form_id": "F-spoof", "name": "王总", "phone": "13900002222", "email": "attacker@example.net",
                "message": "请问会员积分怎么查询"}
        spoof = (await adapter.post("/v1/intake/web", json=form)).json()["request_id"]
        vouched = (await adapter.post("/v1/intake/web", json=form | {"form_id": "F-vouched", "verified": ["email"]})
                   ).json()["request_id"]
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-real-vip", text="请问会员积分怎么查询",
                                                    contact="13900002222"))
        received = {e["source_id"]: e for e in await events.wait_for(s.REQUEST_RECEIVED, count=3)}
        assigned = {e["request_id"]: e for e in await events.wait_for(s.REQUEST_ASSIGNED, count=3)}
        await outbound.wait_for("kefu.outbound.web", kind="receipt")
        await outbound.wait_for("kefu.outbound.sms", kind="receipt")
        receipts = outbound.of("kefu.outbound.web", kind="receipt")  # (receipts go out with the assignment)
    spoofed = received["F-spoof"]["customer"]
    assert (spoofed["customer_id"], spoofed["tier"], spoofed["registered"]) == (None, "standard", False)
    assert spoofed["possible_customer_id"] == "c-vip" and spoofed["reachable"] == []
    assert assigned[spoof]["queue"] != "vip" and assigned[spoof]["tier"] == "standard"
    # nothing to a contact the sender did not prove: the only web receipt is the vouched form's, by email only
    assert [(r["request_id"], r["to"]) for r in receipts] == [(vouched, {"email": "attacker@example.net"})]
    assert received["F-vouched"]["customer"]["customer_id"].startswith("anon-")
    real = received["SM-real-vip"]["customer"]
    assert (real["customer_id"], real["tier"], real["reachable"]) == ("c-vip", "vip", ["phone"])
