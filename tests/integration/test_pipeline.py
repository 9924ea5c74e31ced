"""The whole request path on a real nats-server: seven channels in, received + assigned out."""

from __future__ import annotations

import pytest

from devtools.payloads import CONTENT_TYPES, payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.integration.conftest import pipeline
from tests.support.services import ADAPTER_KEY

pytestmark = pytest.mark.integration


async def test_every_channel_published_on_nats_is_received_and_assigned(start, events, outbound, js) -> None:
    async with pipeline(start):
        for channel in Channel:
            ack = await js.publish(s.intake_subject(channel), payload(channel, f"{channel.value}-src-1"))
            assert ack.stream == s.STREAM_INTAKE and not ack.duplicate
        received = await events.wait_for(s.REQUEST_RECEIVED, count=len(Channel))
        assigned = await events.wait_for(s.REQUEST_ASSIGNED, count=len(Channel))
        receipts = await outbound.wait_for("kefu.outbound.sms")
    assert {r["channel"] for r in received} == {c.value for c in Channel}
    assert {a["request_id"] for a in assigned} == {r["request_id"] for r in received}
    for a in assigned:
        assert a["category"] in ("inquiry", "suggestion", "complaint", "help")
        assert a["priority"] in ("urgent", "important", "normal") and isinstance(a["emergency"], bool)
        assert a["department"] and isinstance(a["co_departments"], list) and a["queue"]
        assert a["due"]["first_response"] < a["due"]["resolution"]
    by_channel = {r["channel"]: r for r in received}
    assert by_channel["phone"]["customer"]["phone"] == "+8613900001111"
    assert by_channel["email"]["customer"]["email"] == "wangfang@example.cn"
    assert by_channel["wechat"]["customer"]["wechat_openid"] == "oUpF8uMuAJO_M2pxb1Q9"
    wechat = next(a for a in assigned if a["request_id"] == by_channel["wechat"]["request_id"])
    assert wechat["emergency"] is True and wechat["priority"] == "urgent"
    assert receipts[0]["kind"] == "receipt" and receipts[0]["to"] == {"phone": "+8613900001111"}


async def test_every_channel_posted_over_http_is_received_and_assigned(start, events) -> None:
    async with pipeline(start) as (intake, _), intake.client(ADAPTER_KEY) as http:
        ids = {}
        for channel in Channel:
            resp = await http.post(
                f"/v1/intake/{channel.value}",
                content=payload(channel, f"{channel.value}-http-1"),
                headers={"Content-Type": CONTENT_TYPES[channel]},
            )
            assert resp.status_code == 202, resp.text
            assert resp.json()["status"] == "accepted"
            ids[channel.value] = resp.json()["request_id"]
        for channel, request_id in ids.items():
            received = await events.wait_for(s.REQUEST_RECEIVED, request_id=request_id)
            assert received[0]["channel"] == channel
            await events.wait_for(s.REQUEST_ASSIGNED, request_id=request_id)


async def test_a_request_published_while_intake_is_down_is_processed_when_it_starts(start, events, js) -> None:
    await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-while-down"))  # nothing runs yet
    async with pipeline(start):
        received = await events.wait_for(s.REQUEST_RECEIVED)
        await events.wait_for(s.REQUEST_ASSIGNED, request_id=received[0]["request_id"])
    assert received[0]["source_id"] == "SM-while-down"
