"""Feedback on a real nats-server: result and survey, answers by page and by reply, reopening,
reminders and expiry, revisits, the monthly sample."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from devtools.payloads import payload
from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.calendar import business_hours, parse_duration
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import ADAPTER_KEY, common_settings, running, tap, wait_until

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
INQUIRY = "请问会员积分怎么查询"


@pytest.fixture
def system(nats_server, tmp_path: Path):
    """Start intake, routing and feedback with config/ plus overrides of feedback.yaml."""

    def make(feedback_yaml: str | None = None, **intake_extra: Any):
        config = tmp_path / "config"
        if not config.exists():
            shutil.copytree(CONFIG, config)
        if feedback_yaml is not None:
            (config / "feedback.yaml").write_text(feedback_yaml)
        settings = {"config_dir": config}
        return (
            running(intake_app, IntakeSettings(**common_settings(nats_server.url, **settings, **intake_extra))),
            running(routing_app, RoutingSettings(**common_settings(nats_server.url, **settings))),
            running(feedback_app, FeedbackSettings(**common_settings(nats_server.url, **settings))),
        )

    return make


def with_overrides(**replacements: str) -> str:
    text = (CONFIG / "feedback.yaml").read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


async def resolve_one(js, events, routing_http, source: str, *, channel: Channel = Channel.sms,
                      contact: str = "13900001111") -> str:
    await js.publish(s.intake_subject(channel), payload(channel, source, text=INQUIRY, contact=contact))
    rid = (await events.wait_for(s.REQUEST_RECEIVED, source_id=source))[0]["request_id"]
    await events.wait_for(s.REQUEST_ASSIGNED, request_id=rid)
    resp = await routing_http.post(f"/v1/requests/{rid}/resolve",
                                   json={"resolution": "积分已补发", "first_contact": True})
    assert resp.status_code == 200, resp.text
    return rid


def token_of(url: str) -> str:
    return parse_qs(urlparse(url).query)["t"][0]


def link_in(invitation: dict) -> str:
    """The customer's survey link (with its key), as the invitation on the channel carries it."""
    found = re.search(r"https?://\S+/v1/surveys/\S+", invitation["text"])
    assert found, invitation["text"]
    return found.group(0)


async def test_result_and_survey_go_out_and_an_answer_on_the_page_is_recorded_once(system, nats_server, js) -> None:
    intake, routing, feedback = system()
    async with intake, routing as r, feedback as f, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        rid = await resolve_one(js, events, http, "SM-fb-1")
        sent = (await events.wait_for(s.SURVEY_SENT, request_id=rid))[0]
        result = (await outbound.wait_for("kefu.outbound.sms", kind="result"))[0]
        invitation = (await outbound.wait_for("kefu.outbound.sms", kind="survey"))[0]
        url = link_in(invitation)
        async with httpx.AsyncClient(timeout=10) as web:
            page = await web.get(url)
            token = token_of(url)
            wrong = await web.get(url.replace(token, "0" * 64))
            unknown = await web.get(f"{f.base_url}/v1/surveys/srv_{'f' * 24}?t={token}")
            out_of_range = await web.post(f"{f.base_url}/v1/surveys/{sent['survey_id']}", json={"t": token, "rating": 7})
            first = await web.post(f"{f.base_url}/v1/surveys/{sent['survey_id']}", json={"t": token, "rating": 5,
                                                                                        "comment": "很快"})
            second = await web.post(f"{f.base_url}/v1/surveys/{sent['survey_id']}", json={"t": token, "rating": 1})
        answered = (await events.wait_for(s.SURVEY_ANSWERED, request_id=rid))[0]
        async with httpx.AsyncClient(timeout=10) as web:
            after = await web.get(url)
    assert url.startswith(f.base_url) and sent["channel"] == "sms"
    # the event log names the page, not its key: reading events does not let anyone answer
    assert sent["url"] == url.split("?")[0] and "t=" not in sent["url"]
    assert result["text"].endswith("积分已补发") and result["to"] == {"phone": "+8613900001111"}
    assert url in invitation["text"]
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"] and INQUIRY in page.text
    assert wrong.status_code == unknown.status_code == 404
    assert out_of_range.status_code == 422
    assert first.status_code == 200 and first.json()["reopened"] is False
    assert second.status_code == 409 and second.json()["error"] == "already_answered"
    assert (answered["rating"], answered["survey_id"]) == (5, sent["survey_id"])
    assert after.status_code == 200 and "已经提交" in after.text  # the page now says it was answered
    assert events.of(s.REQUEST_REOPENED) == []


async def test_a_low_rating_reopens_the_request_with_a_raised_priority(system, nats_server, js) -> None:
    intake, routing, feedback = system()
    async with intake, routing as r, feedback as f, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        rid = await resolve_one(js, events, http, "SM-fb-2")
        sent = (await events.wait_for(s.SURVEY_SENT, request_id=rid))[0]
        invitation = (await outbound.wait_for("kefu.outbound.sms", kind="survey"))[0]
        async with httpx.AsyncClient(timeout=10) as web:
            form = await web.post(f"{f.base_url}/v1/surveys/{sent['survey_id']}",
                                  data={"t": token_of(link_in(invitation)), "rating": "1", "reasons": "问题没有解决"})
        reopened = (await events.wait_for(s.REQUEST_REOPENED, request_id=rid))[0]
        alert = (await outbound.wait_for("kefu.outbound.supervisor.business"))[0]

        async def requeued() -> dict | None:
            record = (await http.get(f"/v1/requests/{rid}")).json()
            return record if record["state"] == "queued" else None

        record = await wait_until(requeued, what="routing re-queued the reopened request")
    assert form.status_code == 200 and "重新处理" in form.text
    assert reopened["priority"] == "important" and reopened["reason"] == "dissatisfied (rating 1)"
    assert alert["request_id"] == rid and alert["reason"].startswith("reopened")
    assert (record["state"], record["priority"], record["queue"]) == ("queued", "important", "business.important")
    assert record["history"][-1]["action"] == "reopened"


async def test_an_sms_reply_answers_the_open_survey_instead_of_making_a_request(system, nats_server, js) -> None:
    intake, routing, feedback = system()
    async with intake as i, routing as r, feedback, r.client() as http, i.client() as intake_http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        rid = await resolve_one(js, events, http, "SM-fb-3")
        await events.wait_for(s.SURVEY_SENT, request_id=rid)
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-fb-3-reply", text="2"))
        answered = (await events.wait_for(s.SURVEY_ANSWERED, request_id=rid))[0]
        await events.wait_for(s.REQUEST_REOPENED, request_id=rid)
        # answered: the next "5" from the same number is an ordinary message again
        from urllib.parse import urlencode

        late = await intake_http.post("/v1/intake/sms", content=urlencode(
            {"MessageSid": "SM-fb-3-late", "From": "13900001111", "Body": "5"}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer test-adapter-key"})
    assert answered["rating"] == 2 and answered.get("via") == "reply"
    assert events.of(s.REQUEST_RECEIVED, source_id="SM-fb-3-reply") == []
    assert late.json()["status"] == "accepted"


async def test_with_conversations_on_a_survey_answer_is_still_no_follow_up(system, nats_server, js) -> None:
    """Threading by contact on (the default): the rating answers the survey and is no follow-up; the
    customer's next words continue the request the rating reopened."""
    intake, routing, feedback = system(conversation_windows="sms=72h")
    async with intake as i, routing as r, feedback, r.client() as http, i.client(ADAPTER_KEY) as intake_http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        rid = await resolve_one(js, events, http, "SM-fb-c1", contact="13900005555")
        await events.wait_for(s.SURVEY_SENT, request_id=rid)
        await js.publish("kefu.intake.sms", payload(Channel.sms, "SM-fb-c2", text="2", contact="13900005555"))
        await events.wait_for(s.SURVEY_ANSWERED, request_id=rid)
        await events.wait_for(s.REQUEST_REOPENED, request_id=rid)
        more = await intake_http.post("/v1/intake/sms", content=payload(
            Channel.sms, "SM-fb-c3", text="积分还是没到账", contact="13900005555"),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        await events.wait_for(s.REQUEST_MESSAGE, request_id=rid)
    assert more.json() == {"status": "appended", "request_id": rid}
    assert [m["source_id"] for m in events.of(s.REQUEST_MESSAGE)] == ["SM-fb-c3"]  # the rating is not one


async def test_unanswered_survey_gets_one_reminder_then_expires(system, nats_server, js) -> None:
    intake, routing, feedback = system(with_overrides(**{"expires_after: 28d": "expires_after: 2s",
                                                       "reminder_after: 7d": "reminder_after: 1s"}))
    async with intake, routing as r, feedback, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        rid = await resolve_one(js, events, http, "SM-fb-4")
        sent = (await events.wait_for(s.SURVEY_SENT, request_id=rid))[0]
        reminder = await outbound.wait_for("kefu.outbound.sms", kind="survey", count=2)
        expired = (await events.wait_for(s.SURVEY_EXPIRED, request_id=rid))[0]
        link = link_in(reminder[0])
        async with httpx.AsyncClient(timeout=10) as web:
            page = await web.get(link)
            late = await web.post(sent["url"], json={"t": token_of(link), "rating": 4})
    assert reminder[1]["message_id"].startswith("reminder.") and "温馨提醒" in reminder[1]["text"]
    assert expired["survey_id"] == sent["survey_id"]
    assert page.status_code == 410 and late.status_code == 410


async def test_revisit_is_due_three_working_days_later_and_its_outcome_is_recorded(system, nats_server, js) -> None:
    intake, routing, feedback = system()
    async with intake, routing as r, feedback as f, r.client() as http, f.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        rid = await resolve_one(js, events, http, "SM-fb-5")
        resolved = (await events.wait_for(s.REQUEST_RESOLVED, request_id=rid))[0]
        scheduled = (await events.wait_for(s.FOLLOWUP_SCHEDULED, request_id=rid))[0]
        url = f"/v1/followups/{scheduled['followup_id']}"
        done = await admin.post(url, json={"outcome": "recurred", "note": "又坏了"})
        again = await admin.post(url, json={"outcome": "recurred"})
        other = await admin.post(url, json={"outcome": "resolved"})
        missing = await admin.post("/v1/followups/fu_" + "0" * 20, json={"outcome": "resolved"})
        completed = (await events.wait_for(s.FOLLOWUP_COMPLETED, request_id=rid))[0]
        reopened = (await events.wait_for(s.REQUEST_REOPENED, request_id=rid))[0]
    hours = business_hours(CONFIG)
    expected = hours.clock().add(datetime.fromisoformat(resolved["occurred_at"]),
                                 parse_duration("3wd", hours.workday))
    assert datetime.fromisoformat(scheduled["due"]) == expected
    # one convention (docs/operations.md#time): computed on the local calendar, written in UTC
    assert scheduled["due"].endswith("+00:00") and done.json()["due"].endswith("+00:00")
    assert done.status_code == again.status_code == 200 and other.status_code == 409 and missing.status_code == 404
    assert completed["outcome"] == "recurred" and reopened["reason"].startswith("problem recurred")


async def test_revisit_task_goes_out_when_due(system, nats_server, js) -> None:
    intake, routing, feedback = system(with_overrides(**{"after: 3wd": "after: 0s"}))
    async with intake, routing as r, feedback, r.client() as http, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        rid = await resolve_one(js, events, http, "SM-fb-6")
        task = (await outbound.wait_for("kefu.outbound.sms", kind="revisit"))[0]
    assert task["request_id"] == rid and "回访" in task["text"]


async def test_monthly_sample_surveys_a_share_of_unsurveyed_requests_per_department(system, nats_server, js) -> None:
    intake, routing, feedback = system(with_overrides(
        **{"channels: [phone, sms, email, web, wechat, app, walkin]": "channels: []"}))
    async with intake, routing as r, feedback as f, r.client() as http, f.client() as admin, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        ids = [await resolve_one(js, events, http, f"SM-fb-m{i}", contact=f"1390000{i:04d}") for i in range(3)]
        await events.wait_for(s.FOLLOWUP_SCHEDULED, count=3)
        month = datetime.now(UTC).astimezone(business_hours(CONFIG).tz).strftime("%Y-%m")
        sample = (await admin.post(f"/v1/samples/monthly?month={month}")).json()
        assert sample["surveyed"] == 1, sample
        sent = await events.wait_for(s.SURVEY_SENT, count=1)
        again = (await admin.post(f"/v1/samples/monthly?month={month}")).json()
    assert sample["surveyed"] == 1 and sample["request_ids"][0] in ids  # 10% of 3 in one department: 1
    assert sent[0]["request_id"] == sample["request_ids"][0]
    assert again["surveyed"] == 1 and again["request_ids"] != sample["request_ids"]  # the surveyed one is skipped
