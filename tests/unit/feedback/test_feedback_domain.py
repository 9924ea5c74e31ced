from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from services.feedback.domain.followup import monthly_sample, previous_month
from services.feedback.domain.page import SECURITY_HEADERS, survey_form
from services.feedback.domain.survey import (
    AnswerRefused,
    Customer,
    RequestView,
    Survey,
    answer,
    link_token,
    raised,
    reminder_time,
    reopened_context,
    resolved_again,
    survey_id_for,
    survey_url,
    token_ok,
    view_of,
)
from shared.contract.enums import Channel, Language, Priority, Tier
from shared.contract.models import CustomerRef, RequestResolved

NOW = datetime(2026, 11, 24, 2, tzinfo=UTC)
REASONS = ["Too slow", "Other"]


def survey(**kw) -> Survey:
    base = {"survey_id": "srv_" + "0" * 24, "request_id": "req_x", "customer_id": "c", "channel": "sms",
            "language": "en", "sent_at": NOW, "expires_at": NOW + timedelta(days=28)}
    return Survey(**(base | kw))


def test_link_token_is_256_bits_bound_to_the_survey_and_verified_in_constant_time() -> None:
    token = link_token("secret", "srv_a")
    assert len(token) == 64 and token_ok("secret", "srv_a", token)
    assert not token_ok("secret", "srv_b", token) and not token_ok("other", "srv_a", token)
    assert not token_ok("secret", "srv_a", None)
    assert survey_url("https://kefu.example.cn/", "secret", "srv_a") == f"https://kefu.example.cn/v1/surveys/srv_a?t={token}"


def test_survey_ids_are_stable_per_origin() -> None:
    assert survey_id_for("resolved:e1") == survey_id_for("resolved:e1") != survey_id_for("resolved:e2")


def test_one_answer_only_within_the_window_and_range() -> None:
    answered = answer(survey(), rating=2, comment=" slow ", reasons=["Too slow"], allowed_reasons=REASONS, now=NOW,
                      via="page")
    assert (answered.status, answered.rating, answered.comment) == ("answered", 2, "slow")
    with pytest.raises(AnswerRefused) as again:
        answer(answered, rating=5, comment=None, reasons=[], allowed_reasons=REASONS, now=NOW, via="page")
    assert again.value.status == 409
    for rating in (0, 6):
        with pytest.raises(AnswerRefused) as bad:
            answer(survey(), rating=rating, comment=None, reasons=[], allowed_reasons=REASONS, now=NOW, via="page")
        assert bad.value.status == 422
    with pytest.raises(AnswerRefused) as late:
        answer(survey(), rating=3, comment=None, reasons=[], allowed_reasons=REASONS, now=NOW + timedelta(days=29),
               via="reply")
    assert late.value.status == 410
    with pytest.raises(AnswerRefused):
        answer(survey(), rating=1, comment=None, reasons=["<script>"], allowed_reasons=REASONS, now=NOW, via="page")


def test_priority_is_raised_on_reopen() -> None:
    assert [raised(p) for p in Priority] == [Priority.urgent, Priority.urgent, Priority.important]


def test_reminder_only_before_expiry() -> None:
    assert reminder_time(NOW, timedelta(days=7), NOW + timedelta(days=28)) == NOW + timedelta(days=7)
    assert reminder_time(NOW, timedelta(days=30), NOW + timedelta(days=28)) is None
    assert reminder_time(NOW, None, NOW + timedelta(days=28)) is None


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_page_escapes_customer_text_and_has_no_script() -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    page = survey_form(language=Language.zh, survey_id="srv_1", token="tok", customer_name=hostile, ref="ABC",
                       summary=hostile, reasons=["慢"])
    parsed = _Collect()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert hostile in "".join(parsed.text)  # shown as text
    assert 'lang="zh-CN"' in page and 'name="viewport"' in page
    assert page.count('type="radio"') == 5 and page.count("<label for=\"r") == 5
    assert "script-src" not in SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in SECURITY_HEADERS["Content-Security-Policy"]
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"


def view(rid: str, department: str, resolved: datetime | None, surveyed: bool = False) -> RequestView:
    return RequestView(request_id=rid, channel=Channel.sms, language=Language.zh, customer=Customer(),
                       department=department, resolved_at=resolved, surveyed=surveyed)


def test_monthly_sample_takes_a_share_per_department_of_the_unsurveyed() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    october = datetime(2026, 10, 15, tzinfo=UTC)
    views = ([view(f"q{i}", "quality", october) for i in range(20)]
             + [view(f"b{i}", "business", october) for i in range(3)]
             + [view("s1", "business", october, surveyed=True), view("n1", "business", datetime(2026, 11, 2, tzinfo=UTC))])
    chosen = monthly_sample(views, month="2026-10", share=0.1, tz=tz)
    by_department = {d: [v.request_id for v in chosen if v.department == d] for d in ("quality", "business")}
    assert len(by_department["quality"]) == 2 and len(by_department["business"]) == 1
    assert "s1" not in by_department["business"] and "n1" not in by_department["business"]
    assert chosen == monthly_sample(views, month="2026-10", share=0.1, tz=tz)  # reproducible


def test_previous_month() -> None:
    assert previous_month(datetime(2026, 1, 1).date()) == "2025-12"
    assert previous_month(datetime(2026, 11, 24).date()) == "2026-10"


def test_view_of_the_first_resolution_has_what_reporting_back_needs() -> None:
    event = RequestResolved(
        request_id="req_r", resolution="已补发", channel=Channel.app, department="business", priority=Priority.important,
        tier=Tier.vip, language=Language.en, subject="Points", summary="Points\nmissing since May",
        customer=CustomerRef(customer_id="c-1", name="Li", phone="+8613900001111", tier=Tier.vip),
        app_user_id="u-7", occurred_at=NOW)
    view = view_of(event)
    assert view is not None
    assert view.customer == Customer(customer_id="c-1", name="Li", contacts={"phone": "+8613900001111", "app_user_id": "u-7"})
    assert (view.channel, view.language, view.summary, view.resolved_at, view.resolutions) == (
        Channel.app, Language.en, "Points\nmissing since May", NOW, 1)
    assert (view.department, view.priority, view.tier) == ("business", Priority.important, Tier.vip)
    # a resolution from a routing that did not carry the customer: the view comes from request.received
    assert view_of(event.model_copy(update={"customer": None})) is None


def test_a_reopen_says_where_the_request_stood() -> None:
    event = RequestResolved(request_id="req_r", resolution="ok", channel=Channel.sms, department="quality",
                            customer=CustomerRef(phone="+8613900001111"), misrouted=False, occurred_at=NOW)
    view = view_of(event)
    assert view is not None
    assert reopened_context(view) == {"department": "quality", "channel": Channel.sms, "first_resolved_at": NOW,
                                      "counted_accurate": True}
    again = view.model_copy(update={"resolutions": 2, "resolved_at": NOW + timedelta(days=1)})
    assert reopened_context(again)["first_resolved_at"] == NOW and not reopened_context(again)["counted_accurate"]
    moved = view_of(event.model_copy(update={"misrouted": True}))
    assert moved is not None and not reopened_context(moved)["counted_accurate"]


def test_a_later_resolution_is_recorded_once_and_keeps_the_first() -> None:
    first = RequestResolved(request_id="req_r", resolution="ok", channel=Channel.sms, department="quality",
                            customer=CustomerRef(phone="+8613900001111"), occurred_at=NOW)
    view = view_of(first)
    assert view is not None and resolved_again(view, first) is None  # a redelivery changes nothing
    later = first.model_copy(update={"occurred_at": NOW + timedelta(days=2), "resolution": "fixed",
                                     "department": "after_sales", "misrouted": True})
    again = resolved_again(view, later)
    assert again is not None
    assert (again.resolutions, again.resolved_at, again.first_resolved_at) == (2, NOW + timedelta(days=2), NOW)
    assert (again.department, again.misrouted, again.resolution) == ("after_sales", True, "fixed")


def test_results_and_surveys_by_mail_go_out_in_the_requests_thread() -> None:
    from services.feedback.domain.messages import message
    from shared.contract.conversation import outbound_id, request_named, short_ref

    rid = "req_" + "d" * 26
    event = RequestResolved(request_id=rid, resolution="已补发", channel=Channel.email, language=Language.zh,
                            subject="积分", customer=CustomerRef(email="li@example.cn", reachable=["email"]),
                            mail_thread_ids=["first@example.cn", "second@example.cn"], occurred_at=NOW)
    view = view_of(event)
    assert view is not None
    result = message("support.example.cn", view, kind="result", message_id="result.srv_1", text="…", at=NOW)
    survey = message("support.example.cn", view, kind="survey", message_id="survey.srv_1", text="…", at=NOW)
    assert result.thread is not None and request_named(result.thread.message_id) == rid
    assert outbound_id(result.thread.message_id) == "result.srv_1"
    assert result.thread.in_reply_to == "<second@example.cn>" and f"[{short_ref(rid)}]" in result.thread.subject
    assert (result.automatic, survey.automatic) == (False, True)  # a survey is written by no person
    sms = view.model_copy(update={"channel": Channel.sms})
    assert message("support.example.cn", sms, kind="result", message_id="r", text="…", at=NOW).thread is None
