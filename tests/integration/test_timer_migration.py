"""Upgrading from the single KEFU_TIMERS stream: provisioning moves pending timers into the
per-service streams, and a fired timer routing had not yet handled is still handled."""

from __future__ import annotations

import json

import nats
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, StreamConfig

from shared.contract import subjects as s
from shared.nats.topology import provision
from shared.settings import KefuSettings

pytestmark = pytest.mark.integration


async def test_provision_moves_legacy_timers_into_each_services_stream(nats_server) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="KEFU_TIMERS", subjects=["kefu.timers.>"], allow_msg_schedules=True,
                                     discard=DiscardPolicy.OLD))
    await js.add_consumer("KEFU_TIMERS", ConsumerConfig(durable_name=s.CONSUMER_ROUTING_TIMERS, ack_policy=AckPolicy.EXPLICIT,
                                                        filter_subject="kefu.timers.fire.routing.>"))
    far = {"Nats-Schedule": "@at 2099-01-01T00:00:00Z"}
    await js.publish("kefu.timers.schedule.routing.req_a.sla", b'{"a":1}',
                     headers=far | {"Nats-Schedule-Target": "kefu.timers.fire.routing.req_a.sla"})
    await js.publish("kefu.timers.schedule.feedback.srv_b.expire", b'{"b":1}',
                     headers=far | {"Nats-Schedule-Target": "kefu.timers.fire.feedback.srv_b.expire"})
    await js.publish("kefu.timers.fire.routing.req_done.sla", b'{"done":1}')  # handled below
    await js.publish("kefu.timers.fire.routing.req_c.offer", b'{"c":1}')  # fired, not yet handled
    sub = await js.pull_subscribe("kefu.timers.fire.routing.>", durable=s.CONSUMER_ROUTING_TIMERS, stream="KEFU_TIMERS")
    (first,) = await sub.fetch(1, timeout=5)
    await first.ack_sync()

    settings = KefuSettings(nats_url=nats_server.url)
    await provision(js, settings)
    await provision(js, settings)  # idempotent: a re-run copies nothing twice

    with pytest.raises(nats.js.errors.NotFoundError):
        await js.stream_info("KEFU_TIMERS")
    routing = await js.stream_info(s.timers_stream("routing"), subjects_filter="kefu.timers.>")
    feedback = await js.stream_info(s.timers_stream("feedback"), subjects_filter="kefu.timers.>")
    schedule = await js.get_last_msg(s.timers_stream("routing"), "kefu.timers.schedule.routing.req_a.sla")
    await nc.close()
    assert routing.state.subjects == {"kefu.timers.schedule.routing.req_a.sla": 1,
                                      "kefu.timers.fire.routing.req_c.offer": 1}
    assert feedback.state.subjects == {"kefu.timers.schedule.feedback.srv_b.expire": 1}
    assert schedule.headers["Nats-Schedule"] == far["Nats-Schedule"] and json.loads(schedule.data) == {"a": 1}
