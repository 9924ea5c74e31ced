"""Metrics on a real nats-server: the scripted events give exactly the expected values, a restart
mid-stream gives the same, the weekly report matches, and every service's /metrics lints clean."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import scripted
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def publish(js, events) -> None:
    for subject, body in events:
        await js.publish(subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": body["event_id"]})


async def scrape_when(http, applied: int) -> dict:
    async def ready() -> dict | None:
        resp = await http.get("/metrics")
        if resp.status_code != 200:
            return None
        found = samples(resp.text)
        return found if value(found, "kefu_metrics_events_applied_total") == applied else None

    return await wait_until(ready, what=f"{applied} events applied")


async def test_scripted_events_give_exact_values_and_a_restart_mid_stream_gives_the_same(start, js) -> None:
    events = scripted.events(datetime.now(UTC) - timedelta(hours=10))[:-1]  # the revisit is 3 days ahead
    await publish(js, events[:9])
    async with start["metrics"]() as first, first.client() as http:
        await scrape_when(http, 9)
        await publish(js, events[9:])
        before = await scrape_when(http, len(events))
    async with start["metrics"]() as second, second.client() as http:
        after = await scrape_when(http, len(events))

    m = before
    assert value(m, "kefu_requests_received_total", channel="sms") == 1
    assert value(m, "kefu_requests_rejected_total", channel="email", reason="unparseable") == 1
    assert value(m, "kefu_requests_assigned_total", category="help", priority="urgent", department="after_sales") == 1
    assert value(m, "kefu_requests_accepted_total", channel="sms", department="customer_service", in_time="false") == 1
    assert value(m, "kefu_requests_resolved_total", channel="app", department="business", first_contact="true",
                 in_time="true") == 1
    assert value(m, "kefu_requests_reopened_total", department="customer_service") == 1
    assert value(m, "kefu_sla_breaches_total", sla="first_response", priority="urgent") == 1
    assert value(m, "kefu_survey_responses_total", rating="2") == value(m, "kefu_survey_responses_total", rating="5") == 1
    assert value(m, "kefu_first_response_seconds_sum", channel="sms", priority="normal") == 2700
    assert value(m, "kefu_first_response_seconds_bucket", channel="sms", priority="normal", le="1800.0") == 0
    assert value(m, "kefu_first_response_seconds_bucket", channel="sms", priority="normal", le="3600.0") == 1
    assert value(m, "kefu_resolution_seconds_count", channel="app", priority="normal") == 1
    assert value(m, "kefu_open_requests", department="after_sales", priority="urgent") == 1
    assert value(m, "kefu_open_requests", department="customer_service", priority="important") == 0
    assert value(m, "kefu_acceptance_timeliness_ratio", window="24h") == 0.5
    assert value(m, "kefu_first_contact_resolution_ratio", window="24h") == 0.5
    assert value(m, "kefu_feedback_timeliness_ratio", window="24h") == 1.0
    assert value(m, "kefu_processing_accuracy_ratio", window="24h") == 0.5
    assert value(m, "kefu_csat_score", window="24h") == 3.5
    assert value(m, "kefu_acceptance_timeliness_ratio", window="1h") is None  # nothing in the last hour
    assert value(m, "kefu_oldest_open_emergency_received_timestamp_seconds") is not None
    business = {k: v for k, v in before.items() if k[0].startswith("kefu_") and not k[0].startswith("kefu_metrics")
                and not k[0].startswith("kefu_messages") and not k[0].startswith("kefu_consumer")}
    assert business == {k: v for k, v in after.items() if k in business}


async def test_weekly_report_for_a_seeded_week(start, js) -> None:
    await publish(js, scripted.events(datetime(2026, 11, 16, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))))
    async with start["metrics"]() as metrics, metrics.client() as http:
        await scrape_when(http, 19)
        weekly = (await http.get("/v1/reports/weekly", params={"week": "2026-W47"})).json()
        csv_text = (await http.get("/v1/reports/weekly", params={"week": "2026-W47", "format": "csv"})).text
        monthly = (await http.get("/v1/reports/monthly", params={"month": "2026-11"})).json()
        breached = (await http.get("/v1/reports/drilldown", params={"indicator": "breached", "week": "2026-W47"})).json()
        bad = await http.get("/v1/reports/weekly", params={"week": "2026-48"})
        both = await http.get("/v1/reports/drilldown", params={"indicator": "breached", "week": "2026-W47",
                                                               "month": "2026-11"})
    rows = {r["department"]: r for r in weekly["departments"]}
    assert (rows["business"]["rank"], rows["business"]["acceptance_timeliness"], rows["business"]["csat"]) == (1, 1.0, 5)
    assert (rows["customer_service"]["rank"], rows["customer_service"]["reopened"]) == (2, 1)
    assert rows["after_sales"]["sla_breaches"] == 1
    assert weekly["top_complaint_topics"] == [{"topic": "staff_conduct", "complaints": 1}]
    assert csv_text.startswith("rank,department,score") and "business" in csv_text
    assert monthly["total"]["received"] == 3
    assert breached["request_ids"] == ["req_c"]
    assert bad.status_code == 422 and both.status_code == 422


async def test_reports_are_bounded_to_the_log_and_made_once_for_many_callers(start, js) -> None:
    """The probe: month=1970-01 replayed the log from 1970 on every call, ten such calls in parallel."""
    await publish(js, scripted.events(datetime(2026, 11, 16, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))))
    async with start["metrics"](report_concurrency=1, report_queue=1) as metrics, metrics.client() as http:
        await scrape_when(http, 19)
        ancient = await http.get("/v1/reports/monthly", params={"month": "1970-01"})
        future = await http.get("/v1/reports/monthly", params={"month": "2099-01"})
        drill_ancient = await http.get("/v1/reports/drilldown", params={"indicator": "breached", "month": "1971-02"})
        same = await asyncio.gather(*(http.get("/v1/reports/monthly", params={"month": "2026-11"}) for _ in range(10)))
    assert [(r.status_code, r.json()["error"]) for r in (ancient, future, drill_ancient)] == [(422, "out_of_range")] * 3
    assert "KEFU_RETENTION_EVENTS_DAYS" in ancient.json()["detail"]
    # one replay serves all ten (how many replays run and wait at once: tests/unit/metrics)
    assert {r.status_code for r in same} == {200} and len({r.text for r in same}) == 1


@pytest.mark.parametrize("service", ["intake", "routing", "feedback", "metrics"])
async def test_every_services_metrics_pass_promtool(start, service) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is needed; .ci/run installs it"
    async with start[service]() as svc, svc.client() as http:
        text = (await wait_until(lambda: _ok(http), what="metrics served")).text
    proc = await asyncio.create_subprocess_exec(promtool, "check", "metrics", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0, out.decode()
    assert out.decode().strip() == "", out.decode()  # no lint warnings either
    assert "kefu_" in text


async def _ok(http):
    resp = await http.get("/metrics")
    return resp if resp.status_code == 200 else None
