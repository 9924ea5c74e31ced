"""The contract's request counters, rebuilt from the event log: a restart gives the same numbers."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import subjects as s
from shared.enums import Channel
from tests.integration.conftest import pipeline
from tests.support.payloads import payload
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_request_counters_survive_a_restart(start, events, js) -> None:
    async with pipeline(start):
        for i in range(3):
            await js.publish("kefu.intake.sms", payload(Channel.sms, f"SM-m{i}"))
        await js.publish("kefu.intake.email", payload(Channel.email, "mail-m1@example.cn"))
        await js.publish("kefu.intake.app", b"not json")
        await events.wait_for(s.REQUEST_ASSIGNED, count=4)
        await events.wait_for(s.REQUEST_REJECTED)

    received = ("kefu_requests_received_total", (("channel", "sms"),))
    rejected = ("kefu_requests_rejected_total", (("channel", "app"), ("reason", "unparseable")))
    scrapes = []
    for _ in range(2):  # the second metrics process starts from nothing and replays the log
        async with start["metrics"]() as metrics, metrics.client() as http:
            async def replayed() -> dict | None:
                found = samples((await http.get("/metrics")).text)
                assigned = sum(v for k, v in found.items() if k[0] == "kefu_requests_assigned_total")
                return found if (found.get(received), found.get(rejected), assigned) == (3, 1, 4) else None

            scrapes.append(await wait_until(replayed, what="the whole event log counted"))
    first, second = scrapes
    assert first[received] == 3 and first[("kefu_requests_received_total", (("channel", "email"),))] == 1
    assert first[rejected] == 1
    assigned = {k: v for k, v in first.items() if k[0] == "kefu_requests_assigned_total" and v}
    assert sum(assigned.values()) == 4
    # every bounded series exists at zero from the start
    assert first[("kefu_requests_received_total", (("channel", "walkin"),))] == 0
    assert {k: v for k, v in second.items() if k[0].startswith("kefu_requests")} == {
        k: v for k, v in first.items() if k[0].startswith("kefu_requests")
    }
