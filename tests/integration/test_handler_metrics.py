"""FastStream's per-handler metrics must keep a bounded set of series however many requests pass."""

from __future__ import annotations

import json
import re

import pytest

from shared.contract import subjects as s
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


async def test_handler_metrics_are_labelled_by_consumer_not_by_each_requests_subject(start, js) -> None:
    async with start["routing"]() as routing:
        last = 0
        for rid in ("req_one", "req_two", "req_three"):  # timers of three requests: three subjects
            ack = await js.publish(
                f"{s.TIMERS_FIRE_PREFIX}.routing.{rid}.first_response.warning",
                json.dumps({"request_id": rid, "timer": "first_response.warning", "kind": "warning",
                            "deadline": "first_response", "due": "2026-11-25T00:00:00+00:00"}).encode(),
                stream=s.STREAM_TIMERS_ROUTING)
            last = ack.seq

        async def handled() -> bool:
            info = await js.consumer_info(s.STREAM_TIMERS_ROUTING, s.CONSUMER_ROUTING_TIMERS)
            return info.ack_floor.stream_seq >= last

        await wait_until(handled, what="the timers handled")
        async with routing.client() as admin:
            text = (await admin.get("/metrics")).text
    handlers = set(re.findall(r'faststream_received_messages_total\{[^}]*handler="([^"]+)"', text))
    assert s.CONSUMER_ROUTING_TIMERS in handlers
    assert handlers <= {s.CONSUMER_ROUTING, s.CONSUMER_ROUTING_TIMERS, s.CONSUMER_ROUTING_REOPENED,
                        s.CONSUMER_ROUTING_MESSAGES, s.CONSUMER_ROUTING_UNDELIVERED}


@pytest.mark.parametrize("service", ["intake", "routing", "feedback"])
async def test_every_series_alerts_read_exists_at_zero_from_start_up(start, service: str) -> None:
    """KefuDeadLetters reads increase(kefu_messages_dead_lettered_total): a series that first
    appears at 1 has no increase. Before any message, each consumer's series are there at 0."""
    async with start[service]() as svc, svc.client() as admin:
        text = (await admin.get("/metrics")).text
    consumers = set(re.findall(r'kefu_messages_dead_lettered_total\{consumer="([^"]+)"\} 0\.0', text))
    assert consumers and consumers == set(re.findall(r'kefu_messages_redelivered_total\{consumer="([^"]+)"\} 0\.0', text))
    handled = set(re.findall(r'faststream_received_processed_messages_total\{app_name="[^"]+",broker="nats",'
                             r'handler="([^"]+)",status="error"\} 0\.0', text))
    assert handled == consumers
    assert re.search(r'kefu_messages_published_total\{outcome="stored",stream="KEFU_EVENTS"\} 0\.0', text)
