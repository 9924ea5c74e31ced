"""Staff views of requests (services/routing/domain/views.py): deadlines as time left on the
policy's clock, service order on the floor, an agent's list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.routing.domain.sla import Deadline, SlaConfig, SlaPolicy
from services.routing.domain.views import deadline_view, department_queues, queue_view, urgency_order

CONFIG = SlaConfig(policies=[SlaPolicy(name="p", first_response="4h", resolution="2wd")])
# Friday 2026-12-04 17:00 in Shanghai (09:00 UTC): one business hour left that day, then Monday
FRIDAY_5PM = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
MONDAY_11AM = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def deadline(due: datetime, **extra) -> Deadline:
    return Deadline(target=timedelta(hours=4), due=due, warn_at=due - timedelta(hours=1), **extra)


def test_time_left_is_business_time_and_stops_over_the_weekend() -> None:
    d = deadline(MONDAY_11AM)
    friday = deadline_view(d, config=CONFIG, policy_clock="business", paused=False, now=FRIDAY_5PM)
    saturday = deadline_view(d, config=CONFIG, policy_clock="business", paused=False, now=FRIDAY_5PM + timedelta(days=1))
    assert friday.left_seconds == 3 * 3600 and friday.running and friday.state == "open"  # 17-18 Fri, 9-11 Mon
    assert saturday.left_seconds == 2 * 3600 and not saturday.running


def test_a_24x7_clock_counts_wall_time() -> None:
    view = deadline_view(deadline(MONDAY_11AM), config=CONFIG, policy_clock="24x7", paused=False, now=FRIDAY_5PM)
    assert view.left_seconds == 66 * 3600 and view.running


def test_overdue_warning_paused_and_met() -> None:
    overdue = deadline_view(deadline(FRIDAY_5PM), config=CONFIG, policy_clock="24x7", paused=False,
                            now=FRIDAY_5PM + timedelta(minutes=30))
    assert overdue.state == "breached" and overdue.left_seconds == -1800
    warning = deadline_view(deadline(FRIDAY_5PM + timedelta(minutes=30)), config=CONFIG, policy_clock="24x7",
                            paused=False, now=FRIDAY_5PM)
    assert warning.state == "warning" and warning.left_seconds == 1800
    paused = deadline_view(deadline(FRIDAY_5PM, remaining=timedelta(hours=2)), config=CONFIG, policy_clock="24x7",
                           paused=True, now=FRIDAY_5PM + timedelta(hours=5))
    assert (paused.state, paused.left_seconds, paused.running) == ("paused", 7200, False)
    met = deadline_view(deadline(FRIDAY_5PM, met_at=FRIDAY_5PM - timedelta(minutes=10)), config=CONFIG,
                        policy_clock="24x7", paused=False, now=FRIDAY_5PM + timedelta(days=3))
    assert (met.state, met.left_seconds, met.running) == ("met", 600, False)


def test_a_departments_queues_are_its_priorities_then_any_other_in_use() -> None:
    assert department_queues("hr", priorities=["urgent", "important", "normal"], seen=["vip", "hr.normal"]) == [
        "hr.urgent", "hr.important", "hr.normal", "vip"]


def test_emergencies_first_then_newest_activity() -> None:
    from services.routing.domain.views import WorkItem

    def item(rid: str, minutes: int, emergency: bool = False, alarm: str = "open") -> WorkItem:
        at = FRIDAY_5PM + timedelta(minutes=minutes)
        view = {"due": at, "state": alarm, "left_seconds": 0, "running": True}
        return WorkItem(request_id=rid, ref=rid, state="accepted", channel="sms", category="inquiry", priority="normal",
                        emergency=emergency, department="hr", queue="hr.normal", agent_id="a1", subject="s",
                        received_at=at, last_activity_at=at, deadlines={"resolution": view})
    items = [item("old", 1), item("new", 5), item("fire", 0, emergency=True, alarm="breached"), item("warn", 3, alarm="warning")]
    assert [i.request_id for i in urgency_order(items)] == ["fire", "new", "warn", "old"]
    view = queue_view("hr.normal", waiting_count=7, waiting=items[:1], held=items[1:])
    assert (view.breached, view.warnings, view.waiting_count) == (1, 1, 7)
    assert [i.request_id for i in view.held] == ["fire", "new", "warn"]
