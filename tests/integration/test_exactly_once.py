"""The same (channel, source id) makes one request however often and however it is delivered."""

from __future__ import annotations

import asyncio

import pytest

from devtools.payloads import CONTENT_TYPES, payload
from services.intake.domain.contacts import mask_id_numbers
from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.contract.models import RequestReceived
from tests.integration.conftest import pipeline
from tests.support.services import ADAPTER_KEY, publish_retrying, wait_until

pytestmark = pytest.mark.integration


async def test_duplicate_published_twice_and_after_an_intake_restart_makes_one_request(start, events, js) -> None:
    dup = payload(Channel.app, "evt-dup-1")
    async with start["routing"]():
        async with start["intake"]():
            await js.publish("kefu.intake.app", dup)
            await js.publish("kefu.intake.app", dup)  # no Nats-Msg-Id: both stored in KEFU_INTAKE
            first = await events.wait_for(s.REQUEST_RECEIVED)
        # intake restarted: the durable consumer continues, the KV marker remembers
        async with start["intake"]():
            await js.publish("kefu.intake.app", dup)
            marker = await js.publish("kefu.intake.app", payload(Channel.app, "evt-after-restart"))
            later = await events.wait_for(s.REQUEST_RECEIVED, count=2)
            await events.wait_for(s.REQUEST_ASSIGNED, request_id=later[-1]["request_id"])
    request_id = first[0]["request_id"]
    assert marker.seq == 4
    assert len(events.of(s.REQUEST_RECEIVED, request_id=request_id)) == 1
    assert len(events.of(s.REQUEST_ASSIGNED, request_id=request_id)) == 1


async def test_http_duplicate_answers_the_existing_request_id(start, events) -> None:
    body = payload(Channel.walkin, "BJ-0001")
    async with pipeline(start) as (intake, _), intake.client(ADAPTER_KEY) as http:
        headers = {"Content-Type": CONTENT_TYPES[Channel.walkin]}
        first = await http.post("/v1/intake/walkin", content=body, headers=headers)
        await events.wait_for(s.REQUEST_RECEIVED, request_id=first.json()["request_id"])

        async def said_duplicate():
            # intake marks a source as seen just after publishing request.received: a resend in
            # that instant is answered "accepted" (same id, still one request), then "duplicate"
            resp = await http.post("/v1/intake/walkin", content=body, headers=headers)
            return resp if resp.json()["status"] == "duplicate" else None

        again = await wait_until(said_duplicate, what="the resend recognised as a duplicate")
        # a concurrent burst of the same payload
        burst = await asyncio.gather(*(http.post("/v1/intake/walkin", content=body, headers=headers) for _ in range(5)))
        probe = await http.post("/v1/intake/walkin", content=payload(Channel.walkin, "BJ-0002"), headers=headers)
        await events.wait_for(s.REQUEST_ASSIGNED, request_id=probe.json()["request_id"])
    assert first.status_code == again.status_code == 202
    assert again.json() == {"request_id": first.json()["request_id"], "status": "duplicate"}
    assert {r.json()["request_id"] for r in burst} == {first.json()["request_id"]}
    assert len(events.of(s.REQUEST_RECEIVED, request_id=first.json()["request_id"])) == 1


async def test_routing_decides_once_when_received_is_delivered_again(start, events, js) -> None:
    async with pipeline(start):
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-redeliver"))
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
        # the same request published again as a new event (e.g. replayed by an operator)
        again = RequestReceived.model_validate({**received, "event_id": "another"})
        await js.publish(s.REQUEST_RECEIVED, again.model_dump_json().encode())
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-probe"))
        probe = await events.wait_for(s.REQUEST_RECEIVED, source_id="SM-probe")
        await events.wait_for(s.REQUEST_ASSIGNED, request_id=probe[0]["request_id"])
    assert len(events.of(s.REQUEST_ASSIGNED, request_id=received["request_id"])) == 1


async def test_duplicate_across_a_broker_restart_makes_one_request(start, nats_server) -> None:
    import nats

    from tests.support.services import tap

    dup = payload(Channel.phone, "CA-broker-restart")
    async with pipeline(start):
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = nc.jetstream()
        async with tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as before:
            await js.publish("kefu.intake.phone", dup)
            first = (await before.wait_for(s.REQUEST_ASSIGNED))[0]
        nats_server.stop()  # file storage: streams, consumers and buckets survive
        nats_server.start()
        await wait_until(lambda: nc.is_connected, what="client reconnected")
        # the adapter's retry of the first publish, then a new request
        await publish_retrying(js, "kefu.intake.phone", dup, msg_id="retry-of-first")
        await publish_retrying(js, "kefu.intake.phone", payload(Channel.phone, "CA-after-broker-restart"), msg_id="new")
        async with tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as after:
            probe = await after.wait_for(s.REQUEST_RECEIVED, source_id="CA-after-broker-restart", timeout=30)
            await after.wait_for(s.REQUEST_ASSIGNED, request_id=probe[0]["request_id"], timeout=30)
        await nc.close()
    assert len(after.of(s.REQUEST_RECEIVED, request_id=first["request_id"])) == 1
    assert len(after.of(s.REQUEST_ASSIGNED, request_id=first["request_id"])) == 1


async def test_a_payload_over_http_is_admitted_once_by_the_http_edge_alone(start, events, js) -> None:
    """The HTTP edge admits the payload before it answers (the answer names the request) and keeps
    the raw bytes in KEFU_INTAKE marked admitted: the intake consumer acknowledges them without
    parsing, dedup-checking or counting them again."""
    body = payload(Channel.walkin, "BJ-once")
    async with start["intake"]() as intake, intake.client(ADAPTER_KEY) as http:
        answer = await http.post("/v1/intake/walkin", content=body, headers={"Content-Type": CONTENT_TYPES[Channel.walkin]})
        received = await events.wait_for(s.REQUEST_RECEIVED, request_id=answer.json()["request_id"])
        kept = await js.get_last_msg(s.STREAM_INTAKE, "kefu.intake.walkin")

        async def consumed():
            info = await js.consumer_info(s.STREAM_INTAKE, s.CONSUMER_INTAKE)
            return info.ack_floor.stream_seq >= kept.seq or None

        await wait_until(consumed, what="the intake consumer past the kept payload")
        exposition = (await intake.client().get("/metrics")).text
    assert answer.status_code == 202 and answer.json()["status"] == "accepted"
    assert kept.headers["Kefu-Admitted"] == "http" and kept.data == mask_id_numbers(body)
    assert len(received) == 1
    counts = {line.split("outcome=")[1].split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
              if line.startswith('kefu_intake_payloads_total{channel="walkin"')}
    assert counts["accepted"] == 1 and counts["duplicate"] == 0  # admitted once, not again by the consumer
