"""`kefu policy dry-run`, the command as shipped, on an event log made by the real intake and
routing: the period's requests judged under a candidate configuration, read from the log with
nothing published; the report as a table, JSON and CSV; an invalid candidate refused."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.payloads import payload
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import common_settings, running, tap

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "config"


async def test_a_candidate_configuration_replayed_over_the_recorded_log(nats_server, js, tmp_path) -> None:
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with running(intake_app, IntakeSettings(**settings)), running(routing_app, RoutingSettings(**settings)), \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        for n, text in enumerate(("请问会员积分怎么查询", "积分什么时候过期", "家里燃气泄漏了，闻到煤气味")):
            await js.publish(f"kefu.intake.{Channel.sms.value}", payload(Channel.sms, f"SM-dry-{n}", text=text))
        assigned = await events.wait_for(s.REQUEST_ASSIGNED, count=3)
        await events.wait_for(s.REQUEST_ESCALATED)  # the emergency's, the last event routing publishes here
        before = (await js.stream_info(s.STREAM_EVENTS)).state.messages
    shutil.copytree(CONFIG, tmp_path / "candidate")
    departments = tmp_path / "candidate" / "departments.yaml"
    departments.write_text(departments.read_text(encoding="utf-8").replace(
        "business_inquiry: {lead: business}", "business_inquiry: {lead: customer_service}"), encoding="utf-8")
    now = datetime.now(UTC)
    env = {"PATH": "/usr/bin:/bin", "KEFU_NATS_URL": nats_server.url}
    kefu = str(Path(sys.executable).parent / "kefu")
    done = await asyncio.to_thread(subprocess.run, [
        kefu, "policy", "dry-run", "--config", str(tmp_path / "candidate"),
        "--from", (now - timedelta(hours=1)).isoformat(), "--to", (now + timedelta(hours=1)).isoformat(),
        "--json", str(tmp_path / "report.json"), "--csv", str(tmp_path / "report.csv")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    (tmp_path / "broken").mkdir()
    shutil.copytree(CONFIG, tmp_path / "broken", dirs_exist_ok=True)
    (tmp_path / "broken" / "sla.yaml").write_text("policies: []\n")
    invalid = await asyncio.to_thread(subprocess.run, [
        kefu, "policy", "dry-run", "--config", str(tmp_path / "broken"), "--from", "2026-01-01", "--to", "2026-01-02"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    after = (await js.stream_info(s.STREAM_EVENTS)).state.messages

    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["requests"] == 3 and report["without_decision"] == 0
    business = sum(a["department"] == "business" for a in assigned)  # what routing decided then
    assert business >= 1
    assert report["changes"]["department"]["transitions"] == {"business -> customer_service": business}
    assert report["volumes"]["business"] == {"recorded": business, "candidate": 0}
    assert report["changes"]["category"]["changed"] == 0 and report["changes"]["emergency"]["changed"] == 0
    assert "requests replayed: 3" in done.stdout and f"business -> customer_service ({business})" in done.stdout
    assert "volume,customer_service" in (tmp_path / "report.csv").read_text()
    assert after == before  # a dry run publishes nothing
    assert invalid.returncode == 1 and "sla.yaml" in invalid.stderr
