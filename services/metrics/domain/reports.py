"""Weekly and monthly reports per department, ranked, with the top complaint topics and the
request ids behind each indicator. Pure: a projection of the period's events in, a report out."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date, datetime, timedelta
from statistics import mean
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from shared.contract.models import instant

from .indicators import Facts, Projection

COLUMNS = [
    "rank", "department", "score", "received", "followups", "complaints", "complaint_rate", "accepted", "acceptance_timeliness",
    "avg_first_response_seconds", "resolved", "first_contact_resolution", "processing_accuracy",
    "feedback_timeliness", "avg_resolution_seconds", "reopened", "sla_breaches", "revisits_due",
    "revisit_completion", "survey_responses", "csat",
]
Drilldown = Literal["breached", "late_acceptance", "reopened", "not_first_contact", "dissatisfied", "complaints"]
DRILLDOWNS: tuple[str, ...] = get_args(Drilldown)


def week_bounds(week: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """`2026-W48` -> Monday 00:00 to the next Monday 00:00, local time."""
    year, number = week.split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    start = datetime.combine(monday, datetime.min.time(), tzinfo=tz)
    return start, start + timedelta(days=7)


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    year, number = (int(x) for x in month.split("-"))
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=tz)
    return start, end


def _in(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at < end


def _on_time(at: datetime | None, due: datetime | None) -> bool:
    """Done by its deadline (no deadline: on time). `at` is set: the facts were chosen by it."""
    return due is None or (at is not None and at <= due)


def _seconds(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None  # the facts were chosen by these times
    return (end - start).total_seconds()


def _share(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _avg(values: list[float]) -> float | None:
    return round(mean(values), 1) if values else None


def _row(department: str, facts: list[Facts], p: Projection, start: datetime, end: datetime,
         now: datetime) -> dict[str, Any]:
    received = [f for f in facts if _in(f.received_at, start, end)]
    accepted = [f for f in facts if _in(f.accepted_at, start, end)]
    resolved = [f for f in facts if _in(f.resolved_at, start, end)]
    rated = [f for f in facts if _in(f.rated_at, start, end)]
    complaints = [f for f in received if f.category == "complaint"]
    rids = {id(f) for f in facts}
    by_request = {rid: f for rid, f in p.facts.items() if id(f) in rids}
    # revisits due in the period by now (or done already): one due later this month is not missed yet
    due = [fid for fid, d in p.followup_due.items() if _in(d, start, end) and p.followup_request.get(fid) in by_request
           and (d <= now or fid in p.followup_done)]
    row: dict[str, Any] = {
        "department": department,
        "received": len(received),
        "followups": sum(len([at for at in f.followups_at if _in(at, start, end)]) for f in facts),
        "complaints": len(complaints),
        "complaint_rate": _share([f.category == "complaint" for f in received]),
        "accepted": len(accepted),
        "acceptance_timeliness": _share([_on_time(f.accepted_at, f.due_first) for f in accepted]),
        "avg_first_response_seconds": _avg([_seconds(f.received_at, f.responded_at or f.accepted_at)
                                            for f in facts if _in(f.responded_at or f.accepted_at, start, end)]),
        "resolved": len(resolved),
        "first_contact_resolution": _share([bool(f.first_contact) for f in resolved]),
        "processing_accuracy": _share([f.accurate for f in resolved]),
        "feedback_timeliness": _share([_on_time(f.resolved_at, f.due_resolution) for f in resolved]),
        "avg_resolution_seconds": _avg([_seconds(f.received_at, f.resolved_at) for f in resolved]),
        "reopened": sum(1 for f in facts for at in f.reopened_at if _in(at, start, end)),
        "sla_breaches": sum(1 for f in facts for _, at in f.breaches if _in(at, start, end)),
        "revisits_due": len(due),
        "revisit_completion": _share([fid in p.followup_done for fid in due]),
        "survey_responses": len(rated),
        "csat": round(mean(f.rating for f in rated if f.rating is not None), 2) if rated else None,
    }
    parts = [row[k] for k in ("acceptance_timeliness", "first_contact_resolution", "processing_accuracy",
                              "feedback_timeliness") if row[k] is not None]
    if row["csat"] is not None:
        parts.append(row["csat"] / 5)
    row["score"] = round(mean(parts), 4) if parts else None
    return row


def report(p: Projection, *, period: str, start: datetime, end: datetime, now: datetime | None = None,
           top: int = 5) -> dict[str, Any]:
    """`now`: when the report is made (revisits not due yet are left out); the period's end when absent."""
    now = now or end
    by_department: dict[str, list[Facts]] = {d: [] for d in p.departments}
    for f in p.facts.values():
        by_department.setdefault(f.department, []).append(f)
    rows = [_row(d, facts, p, start, end, now) for d, facts in by_department.items()]
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), r["department"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["score"] is not None else None
    topics = Counter(f.topic or "unknown" for f in p.facts.values()
                     if f.category == "complaint" and _in(f.received_at, start, end))
    everything = [f for facts in by_department.values() for f in facts]
    return {
        "period": period,
        "from": instant(start),  # the period's local bounds, as instants (docs/operations.md#time)
        "to": instant(end),
        "departments": rows,
        "total": _row("all", everything, p, start, end, now) | {"rank": None},
        "top_complaint_topics": [{"topic": t, "complaints": n} for t, n in topics.most_common(top)],
    }


def to_csv(data: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in [*data["departments"], data["total"]]:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return out.getvalue()


def drilldown(p: Projection, *, indicator: str, start: datetime, end: datetime,
              department: str | None = None) -> list[str]:
    """The request ids behind an indicator in a period."""
    tests = {
        "breached": lambda f: any(_in(at, start, end) for _, at in f.breaches),
        "late_acceptance": lambda f: _in(f.accepted_at, start, end) and f.due_first is not None
        and f.accepted_at > f.due_first,
        "reopened": lambda f: any(_in(at, start, end) for at in f.reopened_at),
        "not_first_contact": lambda f: _in(f.resolved_at, start, end) and not f.first_contact,
        "dissatisfied": lambda f: _in(f.rated_at, start, end) and (f.rating or 5) <= 2,
        "complaints": lambda f: _in(f.received_at, start, end) and f.category == "complaint",
    }
    test = tests[indicator]
    return sorted(rid for rid, f in p.facts.items() if (department is None or f.department == department) and test(f))
