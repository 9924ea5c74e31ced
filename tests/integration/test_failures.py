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
        info = await js.stream_info(s.STREAM_DLQ)
        if not info.state.messages:
            return None
        return await js.get_msg(s.STREAM_DLQ, info.state.last_seq)
    except nats.js.errors.NotFoundError:
        return None


async def test_a_message_that_runs_out_of_deliveries_is_recorded_in_the_dlq_even_if_no_handler_survives(js) -> None:
    """A consumer that never acknowledges (its process dies on the message each time): the server's
    max-delivery advisory lands in KEFU_DLQ, naming the stream sequence to inspect or replay."""
    import json as _json

    from nats.js.api import AckPolicy, ConsumerConfig

    ack = await js.publish(s.REQUEST_RECEIVED, b'{"crashes": "every handler"}')
    sub = await js.pull_subscribe(s.REQUEST_RECEIVED, durable="crashy", stream=s.STREAM_EVENTS,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_deliver=2, ack_wait=0.3))

    async def advisory():
        for _ in range(3):
            try:
                await sub.fetch(1, timeout=0.5)  # delivered, never acked: as if the process died
            except Exception:
                pass
        return await _last_dlq(js)

    dead = await wait_until(advisory, timeout=20, what="a max-deliveries advisory")
    body = _json.loads(dead.data)
    assert dead.subject.startswith("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.KEFU_EVENTS.crashy")
    assert body["stream_seq"] == ack.seq and body["deliveries"] == 2
