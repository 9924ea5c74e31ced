"""A scripted day of events with hand-computed indicators (docs/metrics.md defines them).

A  sms, complaint, normal, customer_service: accepted 45 min after receipt (due 30 min: late),
   resolved after 1 h not at first contact, rated 2, reopened, resolved again after 5 h.
B  app, inquiry, normal, business: accepted after 10 min (in time), resolved after 20 min at first
   contact, rated 5; its revisit is due 3 days later and completed.
C  wechat, help, urgent emergency, after_sales: warned and breached (first response), still open.
R  an email rejected as unparseable.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.contract import subjects as s


def events(t0: datetime) -> list[tuple[str, dict[str, Any]]]:
    def at(minutes: float) -> str:
        return (t0 + timedelta(minutes=minutes)).isoformat()

    def ev(subject: str, minutes: float, n: int, **body: Any) -> tuple[str, dict[str, Any]]:
        return subject, {"event_id": f"e{n:03d}", "occurred_at": at(minutes), "schema_version": 1, **body}

    def received(n: int, minutes: float, rid: str, channel: str) -> tuple[str, dict[str, Any]]:
        return ev(s.REQUEST_RECEIVED, minutes, n, request_id=rid, channel=channel, source_id=rid,
                  received_at=at(minutes), customer={}, body="…", language="zh")

    def assigned(n: int, minutes: float, rid: str, channel: str, category: str, priority: str, department: str,
                 first: float, resolution: float, emergency: bool = False, topic: str = "general"):
        return ev(s.REQUEST_ASSIGNED, minutes, n, request_id=rid, channel=channel, category=category,
                  priority=priority, tier="standard", emergency=emergency, department=department,
                  co_departments=[], queue=f"{department}.{priority}", agent_id=None, topic=topic,
                  due={"first_response": at(first), "resolution": at(resolution)})

    return [
        received(1, 0, "req_a", "sms"),
        assigned(2, 0, "req_a", "sms", "complaint", "normal", "customer_service", 30, 3 * 24 * 60,
                 topic="staff_conduct"),
        received(3, 10, "req_b", "app"),
        assigned(4, 10, "req_b", "app", "inquiry", "normal", "business", 40, 2 * 24 * 60),
        received(5, 20, "req_c", "wechat"),
        assigned(6, 20, "req_c", "wechat", "help", "urgent", "after_sales", 30, 8 * 60 + 20, emergency=True,
                 topic="safety"),
        ev(s.REQUEST_ACCEPTED, 20, 7, request_id="req_b", agent_id="a2"),
        ev(s.SLA_WARNING, 27.5, 8, request_id="req_c", sla="first_response", due=at(30), priority="urgent"),
        ev(s.REQUEST_REJECTED, 28, 9, rejection_id="rej_x", channel="email", reason="unparseable", detail="…",
           raw={"stream": "KEFU_REJECTED", "seq": 1, "size": 3, "kept_bytes": 3}),
        ev(s.REQUEST_RESOLVED, 30, 10, request_id="req_b", resolution="已答复", first_contact=True, channel="app"),
        ev(s.SLA_BREACHED, 30, 11, request_id="req_c", sla="first_response", due=at(30), priority="urgent"),
        ev(s.FOLLOWUP_SCHEDULED, 30, 12, followup_id="fu_b", request_id="req_b", due=at(3 * 24 * 60)),
        ev(s.REQUEST_ACCEPTED, 45, 13, request_id="req_a", agent_id="a1"),
        ev(s.REQUEST_RESOLVED, 60, 14, request_id="req_a", resolution="已道歉", first_contact=False, channel="sms"),
        ev(s.SURVEY_ANSWERED, 60, 15, survey_id="srv_b", request_id="req_b", channel="app", rating=5),
        ev(s.SURVEY_ANSWERED, 120, 16, survey_id="srv_a", request_id="req_a", channel="sms", rating=2),
        ev(s.REQUEST_REOPENED, 120, 17, request_id="req_a", reason="dissatisfied (rating 2)", priority="important"),
        ev(s.REQUEST_RESOLVED, 300, 18, request_id="req_a", resolution="已赔偿", first_contact=False, channel="sms"),
        ev(s.FOLLOWUP_COMPLETED, 3 * 24 * 60 + 30, 19, followup_id="fu_b", request_id="req_b",
           outcome="resolved"),
    ]
