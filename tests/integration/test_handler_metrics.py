"""FastStream's per-handler metrics must keep a bounded set of series however many requests pass."""

from __future__ import annotations

import json
import re

import pytest

from shared import subjects as s
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
                stream=s.STREAM_TIMERS)
            last = ack.seq

        async def handled() -> bool:
            info = await js.consumer_info(s.STREAM_TIMERS, s.CONSUMER_ROUTING_TIMERS)
            return info.ack_floor.stream_seq >= last

        await wait_until(handled, what="the timers handled")
        async with routing.client() as admin:
            text = (await admin.get("/metrics")).text
    handlers = set(re.findall(r'faststream_received_messages_total\{[^}]*handler="([^"]+)"', text))
    assert s.CONSUMER_ROUTING_TIMERS in handlers
    assert handlers <= {s.CONSUMER_ROUTING, s.CONSUMER_ROUTING_TIMERS, s.CONSUMER_ROUTING_REOPENED}
