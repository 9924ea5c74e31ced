"""The whole request path on a real nats-server: channels in, received + assigned out."""

from __future__ import annotations

import json

import nats
import pytest

from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared import subjects as s
from tests.support.services import ADAPTER_KEY, common_settings, running, tap

pytestmark = pytest.mark.integration


async def test_phone_payload_on_nats_is_received_and_assigned(nats_server, config_dir) -> None:
    async with (
        running(intake_app, IntakeSettings(**common_settings(nats_server.url))),
        running(routing_app, RoutingSettings(**common_settings(nats_server.url, config_dir=config_dir))),
        tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events,
    ):
        nc = await nats.connect(nats_server.url)
        payload = {"call_id": "call-1", "caller": "13900001111", "started_at": "2026-11-20T10:00:00+08:00",
                   "transcript": "家里燃气泄漏了，闻到很重的煤气味"}
        ack = await nc.jetstream().publish("kefu.intake.phone", json.dumps(payload).encode())
        assert ack.stream == s.STREAM_INTAKE
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
        assigned = (await events.wait_for(s.REQUEST_ASSIGNED, request_id=received["request_id"]))[0]
        await nc.close()
    assert received["channel"] == "phone" and received["customer"]["phone"] == "+8613900001111"
    assert received["received_at"] == "2026-11-20T10:00:00+08:00"
    assert assigned["emergency"] is True and assigned["priority"] == "urgent"
    assert assigned["department"] and "due" in assigned
