"""What happens when handling fails: transient errors are retried, poison goes to the DLQ."""

from __future__ import annotations

import pytest

from shared import subjects as s
from shared.bus import provision
from shared.enums import Channel
from shared.settings import KefuSettings
from tests.integration.conftest import pipeline
from devtools.payloads import payload
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


async def test_poison_event_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(start, events, js) -> None:
    async with pipeline(start):
        await js.publish(s.REQUEST_RECEIVED, b'{"request_id": "req_x", "this is": "not a request"}')
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-after-poison"))
        received = await events.wait_for(s.REQUEST_RECEIVED, source_id="SM-after-poison")
        await events.wait_for(s.REQUEST_ASSIGNED, request_id=received[0]["request_id"])
        dead = await wait_until(lambda: _last_dlq(js), what="a dead-lettered message")
    assert dead.subject == "kefu.dlq.routing"
    assert dead.data == b'{"request_id": "req_x", "this is": "not a request"}'
    assert "ValidationError" in dead.headers["Kefu-Dlq-Reason"]
    assert dead.headers["Kefu-Original-Stream"] == s.STREAM_EVENTS
    assert dead.headers["Kefu-Deliveries"] == "1"  # an invalid event is never retried


async def test_kv_briefly_unavailable_is_retried_not_terminated(start, events, js) -> None:
    async with pipeline(start):
        await js.delete_key_value(s.BUCKET_REQUESTS)  # routing's state store disappears
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-kv-outage"))
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
        await wait_until(lambda: _redelivered(js), what="a failed, redelivered attempt")
        await provision(js, KefuSettings())  # the store comes back
        assigned = await events.wait_for(s.REQUEST_ASSIGNED, request_id=received["request_id"])
    assert len(assigned) == 1
    assert await _last_dlq(js) is None


async def _redelivered(js) -> bool:
    info = await js.consumer_info(s.STREAM_EVENTS, s.CONSUMER_ROUTING)
    return info.num_redelivered > 0


async def _last_dlq(js):
    import nats.js.errors

    try:
        return await js.get_last_msg(s.STREAM_DLQ, "kefu.dlq.>")
    except nats.js.errors.NotFoundError:
        return None
