from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.metrics.domain.indicators import Histogram, Projection, Rolling
from services.metrics.domain.reports import drilldown, month_bounds, report, to_csv, week_bounds
from shared.contract import subjects as s
from tests.support import scripted

DEPARTMENTS = ("customer_service", "quality", "production", "after_sales", "business", "hr", "coordination")
SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 16, 10, 0, tzinfo=SH)  # Monday of 2026-W47


def projection(keep_all: bool = False) -> Projection:
    p = Projection(departments=DEPARTMENTS, keep_all=keep_all)
    for subject, body in scripted.events(T0):
        p.apply(subject, body)
    return p


def test_counters_follow_the_script() -> None:
    p = projection()
    assert dict(p.received) == {"sms": 1, "app": 1, "wechat": 1}
    assert dict(p.rejected) == {("email", "unparseable"): 1}
    assert p.accepted[("sms", "customer_service", "false")] == 1 and p.accepted[("app", "business", "true")] == 1
    assert p.resolved[("sms", "customer_service", "false", "true")] == 1
    assert p.resolved[("app", "business", "true", "true")] == 1
    assert sum(p.resolved.values()) == 2  # A's second resolution after the reopen is not a first resolution
    assert dict(p.reopened) == {"customer_service": 1}
    assert dict(p.breaches) == {("first_response", "urgent"): 1} and dict(p.warnings) == p.breaches
    assert dict(p.responses) == {"5": 1, "2": 1}
    assert p.followups["scheduled"] == 1 and p.followups["resolved"] == 1


def test_histograms_measure_first_acceptance_and_first_resolution() -> None:
    p = projection()
    assert (p.first_response[("sms", "normal")].total, p.first_response[("app", "normal")].total) == (2700, 600)
    assert (p.resolution[("sms", "normal")].total, p.resolution[("app", "normal")].total) == (3600, 1200)
    h = Histogram((60, 600, 3600))
    for v in (30, 600, 601, 10_000):
        h.observe(v)
    assert h.cumulative() == [("60.0", 1), ("600.0", 2), ("3600.0", 3), ("+Inf", 4)]


def test_open_requests_and_the_oldest_emergency() -> None:
    p = projection()
    assert dict(p.open_requests()) == {("after_sales", "urgent"): 1}
    assert p.oldest_open_emergency() == T0 + timedelta(minutes=20)


def test_rolling_window_ratios() -> None:
    p = projection()
    day = p.ratios(T0 + timedelta(hours=6))["24h"]
    assert day == {
        "acceptance_timeliness": 0.5, "first_contact_resolution": 0.5, "feedback_timeliness": 1.0,
        "processing_accuracy": 0.5, "complaint": pytest.approx(1 / 3), "revisit_completion": None, "csat": 3.5,
    }
    later = p.ratios(T0 + timedelta(days=3, hours=1))
    assert later["1h"]["revisit_completion"] == 1.0 and later["1h"]["acceptance_timeliness"] is None


def test_redelivered_events_do_not_count_twice() -> None:
    p = projection()
    for subject, body in scripted.events(T0):
        p.apply(subject, body)
    assert sum(p.accepted.values()) == 2 and sum(p.resolved.values()) == 2 and p.followups["resolved"] == 1
    assert sum(p.assigned.values()) == 3


def test_unknown_label_values_are_folded() -> None:
    p = Projection(departments=DEPARTMENTS)
    p.apply("kefu.events.request.rejected", {"occurred_at": T0.isoformat(), "channel": "fax\n", "reason": "x" * 500})
    assert dict(p.rejected) == {("unknown", "other"): 1}


def test_memory_is_bounded_to_open_and_recent_requests() -> None:
    p = projection()
    p.compact(T0 + timedelta(days=9))
    assert set(p.facts) == {"req_c"}  # still open; A and B resolved more than 7 days before


def test_rolling_sums_per_minute_over_a_window() -> None:
    r = Rolling()
    for seconds, value in ((0, 1), (30, 0), (59, 1), (60, 0), (3600, 1)):
        r.add(T0 + timedelta(seconds=seconds), value)
    assert len(r.buckets) == 3  # one per minute, however many events fall in it
    assert r.share(T0) == 0.6
    assert r.share(T0 + timedelta(seconds=61)) == 0.5  # a window starting mid-minute counts that whole minute
    assert r.share(T0 + timedelta(hours=2)) is None
    r.prune(T0 + timedelta(minutes=30))
    assert list(r.buckets) == [int((T0 + timedelta(hours=1)).timestamp() // 60)]


def test_rolling_windows_hold_at_most_a_bucket_per_minute_of_the_longest_window() -> None:
    """Eight days of a request every 20 seconds (34,560 routed requests, one complaint in four)."""
    p = Projection(departments=DEPARTMENTS)
    step, count = timedelta(seconds=20), 8 * 24 * 180
    for i in range(count):
        at = (T0 + i * step).isoformat()
        p.apply("kefu.events.request.assigned", {"occurred_at": at, "request_id": f"r{i}", "channel": "sms",
                                                 "category": "complaint" if i % 4 == 0 else "inquiry",
                                                 "priority": "normal", "department": "quality"})
    now = T0 + count * step
    p.compact(now)
    assert 7 * 24 * 60 <= len(p.window["complaint"].buckets) <= 7 * 24 * 60 + 1
    assert p.ratios(now)["7d"]["complaint"] == pytest.approx(0.25, abs=0.001)
    assert p.ratios(now)["1h"]["complaint"] == pytest.approx(0.25, abs=0.02)


def test_weekly_report_matches_hand_computed_figures() -> None:
    start, end = week_bounds("2026-W47", SH)
    assert start == datetime(2026, 11, 16, tzinfo=SH) and end == datetime(2026, 11, 23, tzinfo=SH)
    data = report(projection(keep_all=True), period="2026-W47", start=start, end=end)
    rows = {r["department"]: r for r in data["departments"]}
    business, service, after = rows["business"], rows["customer_service"], rows["after_sales"]
    assert (business["received"], business["acceptance_timeliness"], business["first_contact_resolution"],
            business["processing_accuracy"], business["csat"], business["avg_first_response_seconds"]) == (
        1, 1.0, 1.0, 1.0, 5, 600.0)
    assert (service["received"], service["complaints"], service["acceptance_timeliness"], service["reopened"],
            service["processing_accuracy"], service["csat"]) == (1, 1, 0.0, 1, 0.0, 2)
    assert (after["received"], after["sla_breaches"], after["accepted"], after["score"]) == (1, 1, 0, None)
    assert business["score"] == 1.0 and service["score"] == pytest.approx((0 + 0 + 0 + 1 + 0.4) / 5)
    assert [r["department"] for r in data["departments"]][:2] == ["business", "customer_service"]
    assert business["rank"] == 1 and service["rank"] == 2 and after["rank"] is None
    assert data["top_complaint_topics"] == [{"topic": "staff_conduct", "complaints": 1}]
    assert data["total"]["received"] == 3 and data["total"]["sla_breaches"] == 1
    assert (business["revisits_due"], business["revisit_completion"]) == (1, 1.0)  # due Thursday, done
    csv_text = to_csv(data)
    assert csv_text.splitlines()[0].startswith("rank,department,score") and len(csv_text.splitlines()) == 9


def test_a_revisit_not_due_yet_is_not_counted_as_missed() -> None:
    """The probe: revisits due on the 9th read on the 4th gave revisit_completion 0.0."""
    p = Projection(departments=("business",), keep_all=True)
    for subject, event in (
        (s.REQUEST_ASSIGNED, {"occurred_at": "2026-12-01T02:00:00+00:00", "request_id": "r1", "channel": "sms",
                              "category": "inquiry", "priority": "normal", "department": "business"}),
        (s.FOLLOWUP_SCHEDULED, {"occurred_at": "2026-12-01T03:00:00+00:00", "followup_id": "fu1", "request_id": "r1",
                                "due": "2026-12-09T01:00:00+00:00"}),
    ):
        p.apply(subject, event)
    start, end = datetime(2026, 12, 1, tzinfo=SH), datetime(2027, 1, 1, tzinfo=SH)
    on_the_4th = report(p, period="2026-12", start=start, end=end, now=datetime(2026, 12, 4, tzinfo=SH))
    on_the_10th = report(p, period="2026-12", start=start, end=end, now=datetime(2026, 12, 10, tzinfo=SH))
    row_4th = {r["department"]: r for r in on_the_4th["departments"]}["business"]
    row_10th = {r["department"]: r for r in on_the_10th["departments"]}["business"]
    assert (row_4th["revisits_due"], row_4th["revisit_completion"]) == (0, None)  # not due yet: not missed
    assert (row_10th["revisits_due"], row_10th["revisit_completion"]) == (1, 0.0)  # due and not done: missed


def test_a_week_without_events_has_no_figures() -> None:
    _, end = week_bounds("2026-W47", SH)
    nxt = report(projection(keep_all=True), period="2026-W48", start=end, end=end + timedelta(days=7))
    assert all(r["received"] == 0 and r["rank"] is None for r in nxt["departments"])
    assert nxt["top_complaint_topics"] == []


def test_drilldown_lists_the_requests_behind_an_indicator() -> None:
    p = projection(keep_all=True)
    start, end = week_bounds("2026-W47", SH)
    assert drilldown(p, indicator="breached", start=start, end=end) == ["req_c"]
    assert drilldown(p, indicator="late_acceptance", start=start, end=end) == ["req_a"]
    assert drilldown(p, indicator="dissatisfied", start=start, end=end, department="customer_service") == ["req_a"]
    assert drilldown(p, indicator="reopened", start=start, end=end, department="business") == []


def test_month_bounds() -> None:
    assert month_bounds("2026-12", SH) == (datetime(2026, 12, 1, tzinfo=SH), datetime(2027, 1, 1, tzinfo=SH))


def _close_then_reopen(t0: datetime) -> list[tuple[str, dict]]:
    """The script, then B (resolved at first contact, accurate) is closed and reopened by a revisit:
    request.reopened carries where B stood, as feedback publishes it."""
    from shared.contract import subjects as s

    def ev(subject: str, minutes: float, n: int, **body) -> tuple[str, dict]:
        return subject, {"event_id": f"x{n:03d}", "occurred_at": (t0 + timedelta(minutes=minutes)).isoformat(),
                         "schema_version": 1, **body}

    return [*scripted.events(t0),
            ev(s.REQUEST_CLOSED, 400, 1, request_id="req_b", actor="a2"),
            ev(s.REQUEST_REOPENED, 500, 2, request_id="req_b", reason="problem recurred (revisit)", priority="important",
               department="business", channel="app", first_resolved_at=(t0 + timedelta(minutes=30)).isoformat(),
               counted_accurate=True)]


def test_closed_requests_leave_memory_and_a_reopen_counts_as_if_they_had_stayed() -> None:
    live, kept = Projection(departments=DEPARTMENTS), Projection(departments=DEPARTMENTS, keep_all=True)
    for subject, body in _close_then_reopen(T0)[:-1]:
        live.apply(subject, body)
        kept.apply(subject, body)
    assert "req_b" not in live.facts and "req_b" in kept.facts
    subject, body = _close_then_reopen(T0)[-1]
    live.apply(subject, body)
    kept.apply(subject, body)
    now = T0 + timedelta(hours=10)
    assert live.ratios(now) == kept.ratios(now)
    assert live.ratios(now)["24h"]["processing_accuracy"] == 0.0  # A reopened, B reopened: none accurate
    assert dict(live.reopened) == dict(kept.reopened) == {"customer_service": 1, "business": 1}
    assert live.open_requests() == kept.open_requests()
    assert live.open_requests()[("business", "important")] == 1
    # accepted and resolved again later: neither is a first response nor a first resolution
    live.apply(*scripted_event("request.accepted", 520, request_id="req_b", agent_id="a2"))
    live.apply(*scripted_event("request.resolved", 560, request_id="req_b", resolution="ok", channel="app"))
    assert sum(live.resolved.values()) == sum(kept.resolved.values()) == 2
    assert live.first_response[("app", "normal")].total == 600


def scripted_event(name: str, minutes: float, **body) -> tuple[str, dict]:
    return f"kefu.events.{name}", {"event_id": f"y{minutes}", "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
                                   "schema_version": 1, **body}


def test_messages_by_kind_and_the_first_response_is_the_first_accept_or_reply() -> None:
    p = projection(keep_all=True)
    received = dict(p.received)
    rid = next(rid for rid, f in p.facts.items() if f.channel == "wechat")
    at = T0 + timedelta(minutes=1)
    p.apply(s.REQUEST_MESSAGE, {"request_id": rid, "channel": "wechat", "occurred_at": at.isoformat()})
    p.apply(s.MESSAGE_IGNORED, {"channel": "email", "occurred_at": at.isoformat()})
    assert dict(p.received) == received  # a follow-up is never a request
    assert p.messages[("wechat", "followup")] == 1 and p.messages[("email", "auto")] == 1
    assert p.messages[("sms", "new")] == received["sms"]
    assert p.facts[rid].followups_at == (at,)
    # a request replied to before anyone accepted it: its first response is the reply
    fresh = Projection(departments=DEPARTMENTS)
    fresh.apply(s.REQUEST_RECEIVED, {"request_id": "r1", "channel": "email", "received_at": T0.isoformat(),
                                     "occurred_at": T0.isoformat()})
    fresh.apply(s.REQUEST_REPLIED, {"request_id": "r1", "occurred_at": (T0 + timedelta(minutes=4)).isoformat()})
    fresh.apply(s.REQUEST_ACCEPTED, {"request_id": "r1", "occurred_at": (T0 + timedelta(minutes=9)).isoformat()})
    assert fresh.first_response[("email", "unknown")].total == 240


def test_corrections_are_counted_and_take_the_request_out_of_processing_accuracy() -> None:
    """Agents' corrections (kefu.events.request.corrected): counted per field under the department
    the judgement chose; a corrected request's first resolution is not accurate, overall and in its
    department's own ratio, whether the correction came before or after the resolution."""
    p = Projection(departments=("business", "quality"))
    t = datetime(2026, 12, 1, 2, 0, tzinfo=ZoneInfo("UTC"))

    def at(minutes: int) -> str:
        return (t + timedelta(minutes=minutes)).isoformat()

    for rid in ("r1", "r2", "r3"):
        p.apply(s.REQUEST_RECEIVED, {"occurred_at": at(0), "request_id": rid, "channel": "sms", "received_at": at(0)})
        p.apply(s.REQUEST_ASSIGNED, {"occurred_at": at(0), "request_id": rid, "channel": "sms", "category": "inquiry",
                                     "priority": "normal", "department": "business"})
    p.apply(s.REQUEST_CORRECTED, {"occurred_at": at(5), "request_id": "r1", "department": "business",
                                  "changes": [{"field": "category", "old": "inquiry", "new": "complaint"},
                                              {"field": "priority", "old": "normal", "new": "important"}]})
    p.apply(s.REQUEST_TRANSFERRED, {"occurred_at": at(6), "request_id": "r2", "department": "quality"})
    p.apply(s.REQUEST_CORRECTED, {"occurred_at": at(6), "request_id": "r2", "department": "quality",
                                  "changes": [{"field": "department", "old": "business", "new": "quality"},
                                              {"field": "weather", "old": "x", "new": "y"}]})
    for rid in ("r1", "r2", "r3"):
        p.apply(s.REQUEST_RESOLVED, {"occurred_at": at(30), "request_id": rid, "first_contact": True})
    assert p.ratios(t + timedelta(hours=1))["24h"]["processing_accuracy"] == pytest.approx(1 / 3)
    by_department = p.department_accuracy(t + timedelta(hours=1))["24h"]
    assert by_department["business"] == 0.5 and by_department["quality"] == 0.0
    # corrected after its resolution (still open for a reopen, say): the accuracy is taken back
    p.apply(s.REQUEST_CORRECTED, {"occurred_at": at(40), "request_id": "r3", "department": "business",
                                  "changes": [{"field": "category", "old": "inquiry", "new": "help"}]})
    assert p.department_accuracy(t + timedelta(hours=1))["24h"]["business"] == 0.0
    assert p.ratios(t + timedelta(hours=1))["24h"]["processing_accuracy"] == 0.0
    assert dict(p.corrections) == {("category", "business"): 2, ("priority", "business"): 1,
                                   ("department", "business"): 1}
    assert p.open_requests()[("business", "important")] == 0  # resolved: not open


def test_every_subject_the_projection_applies_names_one_of_its_methods() -> None:
    # the table is names, looked up per event: a misspelt name would drop that event's indicators
    for subject, name in Projection.HANDLERS.items():
        assert subject.startswith("kefu.events.")
        assert callable(getattr(Projection, name, None)), (subject, name)
    assert set(Projection.HANDLERS) >= {s.REQUEST_RECEIVED, s.REQUEST_ASSIGNED, s.REQUEST_RESOLVED, s.SURVEY_ANSWERED}
