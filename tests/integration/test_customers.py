"""The customer directory: a request from any known contact carries the customer and tier."""

from __future__ import annotations

import pytest

from shared import subjects as s
from shared.enums import Channel
from tests.integration.conftest import pipeline
from devtools.payloads import payload

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
