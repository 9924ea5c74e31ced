"""Routing applies a changed configuration without a restart: a valid change routes the next
request by it; an invalid file (or a department taken away) is refused, the running configuration
kept, the reason logged, and `kefu_config_valid` says 0 until the files are valid again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.payloads import payload
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import common_settings, running, tap, wait_until

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
INQUIRY = "请问会员积分怎么查询"  # business_inquiry: business leads


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


async def test_a_changed_configuration_applies_and_a_broken_one_is_refused(nats_server, js, tmp_path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    settings = common_settings(nats_server.url, config_dir=config, config_reload_seconds=0.1)
    async with running(intake_app, IntakeSettings(**settings)), \
            running(routing_app, RoutingSettings(**settings)) as routing, routing.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        async def metric(name: str) -> str:
            text = (await http.get("/metrics")).text
            return next(line for line in text.splitlines() if line.startswith(name))

        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-reload-1", text=INQUIRY))
        first = (await events.wait_for(s.REQUEST_ASSIGNED, count=1))[0]
        edit(config / "departments.yaml", "business_inquiry: {lead: business}", "business_inquiry: {lead: hr}")
        await wait_until(lambda: _applied(metric, 1), what="the change applied")
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-reload-2", text=INQUIRY))
        second = (await events.wait_for(s.REQUEST_ASSIGNED, count=2))[1]
        (config / "sla.yaml").write_text("policies: [\n")  # broken YAML
        await wait_until(lambda: _valid(metric, "0.0"), what="the broken file refused")
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-reload-3", text=INQUIRY))
        third = (await events.wait_for(s.REQUEST_ASSIGNED, count=3))[2]
        shutil.copy(CONFIG / "sla.yaml", config / "sla.yaml")
        await wait_until(lambda: _applied(metric, 2), what="the repaired file applied")
        edit(config / "departments.yaml", "departments: [customer_service, quality, production, after_sales, business, hr, "
             "coordination]", "departments: [customer_service, quality, production, after_sales, business, hr]")
        await wait_until(lambda: _invalid(metric, 2), what="a department taken away refused")
        valid = await metric("kefu_config_valid")

    assert first["department"] == "business"
    assert second["department"] == "hr"  # the next request, by the new responsibility
    assert third["department"] == "hr"  # the broken file changed nothing
    assert valid.endswith(" 0.0")


async def _applied(metric, count: int) -> bool:
    return (await metric('kefu_config_reloads_total{outcome="applied"}')).endswith(f" {count}.0")


async def _valid(metric, value: str) -> bool:
    return (await metric("kefu_config_valid")).endswith(f" {value}")


async def _invalid(metric, count: int) -> bool:
    return (await metric('kefu_config_reloads_total{outcome="invalid"}')).endswith(f" {count}.0")
