"""What happens when handling fails: transient errors are retried, poison goes to the DLQ."""

from __future__ import annotations

import asyncio
import re

import pytest

from devtools.payloads import payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.nats.topology import provision
from shared.settings import KefuSettings
from tests.integration.conftest import pipeline
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
            except Exception:  # noqa: BLE001 - the process is gone either way
                pass
        return await _last_dlq(js)

    dead = await wait_until(advisory, timeout=20, what="a max-deliveries advisory")
    body = _json.loads(dead.data)
    assert dead.subject.startswith("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.KEFU_EVENTS.crashy")
    assert body["stream_seq"] == ack.seq and body["deliveries"] == 2


async def test_a_failed_flush_of_a_received_request_leaves_a_marker_and_is_finished_once(
        start, events, js, monkeypatch) -> None:
    """Routing writes no outbox marker on the consumer path (redelivery flushes again); a flush
    that fails leaves one for the reconcile loop, and the redelivery publishes everything once."""
    from shared.nats import outbox

    real = outbox.publish
    failures: list[str] = []

    async def failing_once(publisher, items):
        if not failures:
            failures.append(items[0].msg_id)
            raise TimeoutError("publish timed out")
        await real(publisher, items)

    monkeypatch.setattr(outbox, "publish", failing_once)
    async with pipeline(start):
        markers = await js.key_value(s.BUCKET_OUTBOX)
        # a watcher sees every write of the bucket: the marker may live only milliseconds (the
        # redelivery or the reconcile pass, woken by the request's queue entry, finishes the flush)
        watcher = await markers.watchall()
        written: list[tuple[str, bytes | None]] = []

        async def record() -> None:
            async for entry in watcher:
                if entry is not None:
                    written.append((entry.key, entry.value))

        recorder = asyncio.create_task(record())
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-flush-fails"))
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
        rid = received["request_id"]
        await wait_until(lambda: (rid, b"0") in written, what="an outbox marker after the failed flush")
        assigned = await events.wait_for(s.REQUEST_ASSIGNED, request_id=rid)
        await wait_until(lambda: _no_marker(markers, rid), what="the marker removed by the finished flush")
        recorder.cancel()
        await watcher.stop()
    assert len(failures) == 1 and failures[0].startswith(f"assigned:{rid}")
    assert len(assigned) == 1


async def _marker(kv, key: str) -> bytes | None:
    import nats.js.errors

    try:
        return (await kv.get(key)).value
    except nats.js.errors.KeyNotFoundError:
        return None


async def _no_marker(kv, key: str) -> bool:
    return await _marker(kv, key) is None


async def test_with_concurrent_workers_every_delivery_takes_kefus_consume_path(start, events, js) -> None:
    """KEFU_ROUTING_WORKERS > 1 runs FastStream's concurrent subscriber, which hands deliveries to
    the subscriber through another route than the single-worker one: they must still be settled by
    kefu's consume path (dead letter with a reason, the handler series counted)."""
    async with start["intake"](), start["routing"](workers=2) as routing:
        await js.publish(s.REQUEST_RECEIVED, b'{"request_id": "req_w", "this is": "not a request"}')
        sources = [f"SM-workers-{i}" for i in range(6)]
        for source in sources:
            await js.publish("kefu.intake.sms", payload(Channel.sms, source))
        for source in sources:
            received = await events.wait_for(s.REQUEST_RECEIVED, source_id=source)
            await events.wait_for(s.REQUEST_ASSIGNED, request_id=received[0]["request_id"])
        dead = await wait_until(lambda: _last_dlq(js), what="a dead-lettered message")

        async def counted() -> dict[str, float] | None:  # a delivery is counted once it is settled
            async with routing.client() as admin:
                text = (await admin.get("/metrics")).text
            found = dict(re.findall(r'faststream_received_processed_messages_total\{[^}]*handler="routing",'
                                    r'status="(\w+)"\} ([0-9.]+)', text))
            statuses = {k: float(v) for k, v in found.items()}
            return statuses if statuses.get("acked", 0) >= len(sources) else None

        statuses = await wait_until(counted, what="every delivery counted")
    assert dead.data == b'{"request_id": "req_w", "this is": "not a request"}'
    assert "ValidationError" in dead.headers["Kefu-Dlq-Reason"]
    assert statuses["rejected"] == 1.0 and statuses["acked"] == len(sources)
