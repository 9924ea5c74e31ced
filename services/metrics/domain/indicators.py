"""The service indicators, folded from the event log. Pure: events in (with their own times),
numbers out; `now` is passed in for rolling windows.

Definitions (docs/metrics.md):
- acceptance timeliness: of first acceptances, the share at or before the first-response due time
  (business time, as routing computed it);
- first response time: the first accept or reply - received (seconds; ART is its mean);
- first-contact resolution: of first resolutions, the share resolved at first contact;
- processing accuracy: of first resolutions, the share never reopened, nor transferred to another
  department, nor corrected by an agent (category or priority); also per department, the one
  credited with the first resolution;
- feedback timeliness: of first resolutions (the result goes to the customer at resolution), the
  share at or before the resolution due time;
- revisit completion: of revisits due, the share completed;
- CSAT: mean survey rating; complaint rate: complaints among routed requests.
"""

from __future__ import annotations

import bisect
import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pydantic_core

from shared.contract import subjects as s
from shared.contract.enums import Category, Channel, Priority

CORRECTED_FIELDS = ("category", "priority", "department")
REJECTION_REASONS = ("unparseable", "missing_content", "too_large", "unsupported_media_type", "unknown_channel")
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
KEEP = WINDOWS["7d"]
FIRST_RESPONSE_BUCKETS = (60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
RESOLUTION_BUCKETS = (300, 900, 1800, 3600, 14400, 28800, 86400, 172800, 259200, 604800, 1209600, 2592000)
SLAS = ("first_response", "next_response", "resolution")
CHANNELS = tuple(c.value for c in Channel)
PRIORITIES = tuple(p.value for p in Priority)
CATEGORIES = tuple(c.value for c in Category)


def decode_event(data: bytes) -> dict | None:
    """An event of the log as a JSON object, or None (not JSON, not UTF-8, or not an object)."""
    try:
        event = pydantic_core.from_json(data)  # json.loads' result, faster (docs/performance.md)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def bounded(value: Any, allowed: tuple[str, ...] | set[str], other: str) -> str:
    """Label values come from bounded sets only: anything else is folded into `other`. Interned:
    the facts of many requests share one copy of each label instead of one per decoded event."""
    return sys.intern(value) if isinstance(value, str) and value in allowed else other


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for bound, n in zip(self.buckets, self.counts, strict=True):
            running += n
            out.append((str(float(bound)), running))
        return [*out, ("+Inf", self.count)]


class Rolling:
    """Rolling-window sums in one bucket per minute: memory and reading cost bounded by the longest
    window (7 days: at most 10,080 buckets) instead of growing with the events in it. A window
    counts the whole minute its start falls in (edges move by the minute)."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: dict[int, list[float]] = {}  # minute -> [sum of values, number of values]

    def add(self, at: datetime, value: float, count: int = 1) -> None:
        bucket = self.buckets.get(minute := _minute(at))
        if bucket is None:
            self.buckets[minute] = [float(value), count]
        else:
            bucket[0] += value
            bucket[1] += count

    def total(self, since: datetime) -> tuple[float, float]:
        first = _minute(since)
        hits = n = 0.0
        for minute, (value, count) in self.buckets.items():
            if minute >= first:
                hits += value
                n += count
        return hits, n

    def share(self, since: datetime) -> float | None:
        """Sum over count (a share of 0/1 values, or a mean); None when nothing was counted."""
        hits, n = self.total(since)
        return hits / n if n else None

    def prune(self, horizon: datetime) -> None:
        first = _minute(horizon)
        for minute in [m for m in self.buckets if m < first]:
            del self.buckets[minute]


def _minute(at: datetime) -> int:
    return int(at.timestamp() // 60)


@dataclass(slots=True)
class Facts:
    """What the indicators need of one request (kept for the 7-day windows: slots, no __dict__,
    about 0.4 KiB each instead of 1 KiB)."""

    channel: str
    received_at: datetime
    category: str = "unknown"
    priority: str = "unknown"
    department: str = "other"
    emergency: bool = False
    topic: str | None = None
    due_first: datetime | None = None
    due_resolution: datetime | None = None
    accepted_at: datetime | None = None
    responded_at: datetime | None = None  # the first accept or reply (docs/conversations.md)
    resolved_at: datetime | None = None
    first_contact: bool | None = None
    reopened: int = 0
    misrouted: bool = False  # transferred to another department, or its judgement corrected
    credited: str | None = None  # the department of the first resolution (its accuracy counts there)
    open: bool = False
    rating: int | None = None
    rated_at: datetime | None = None
    breaches: tuple[tuple[str, datetime], ...] = ()  # tuples: most requests have none, and () is shared
    reopened_at: tuple[datetime, ...] = ()
    followups_at: tuple[datetime, ...] = ()  # the customer's follow-ups (messages appended), when

    @property
    def accurate(self) -> bool:
        return self.reopened == 0 and not self.misrouted


@dataclass
class Projection:
    departments: tuple[str, ...]
    received: Counter[str] = field(default_factory=Counter)
    messages: Counter[tuple[str, str]] = field(default_factory=Counter)  # channel, kind (new, followup, auto)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    assigned: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    accepted: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # channel, department, timely
    resolved: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # channel, department, fc, in_time
    reopened: Counter[str] = field(default_factory=Counter)  # department
    corrections: Counter[tuple[str, str]] = field(default_factory=Counter)  # field, department
    breaches: Counter[tuple[str, str]] = field(default_factory=Counter)  # sla, priority
    warnings: Counter[tuple[str, str]] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)  # rating
    surveys_sent: int = 0
    surveys_expired: int = 0
    followups: Counter[str] = field(default_factory=Counter)  # scheduled / resolved / recurred / unreachable
    first_response: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    resolution: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    facts: dict[str, Facts] = field(default_factory=dict)
    followup_due: dict[str, datetime] = field(default_factory=dict)
    followup_request: dict[str, str] = field(default_factory=dict)
    followup_done: set[str] = field(default_factory=set)
    window: dict[str, Rolling] = field(default_factory=dict)
    revisits_done: deque[tuple[datetime, str]] = field(default_factory=deque)
    last_event_at: datetime | None = None
    keep_all: bool = False  # reports keep every fact of their period
    applied: int = 0

    # subject -> the method applying it (made once, not for every event)
    HANDLERS: ClassVar[dict[str, str]] = {
        s.REQUEST_RECEIVED: "_received", s.REQUEST_REJECTED: "_rejected", s.REQUEST_ASSIGNED: "_assigned",
        s.REQUEST_ACCEPTED: "_accepted", s.REQUEST_RESOLVED: "_resolved", s.REQUEST_REOPENED: "_reopened",
        s.REQUEST_CLOSED: "_closed", s.REQUEST_TRANSFERRED: "_transferred", s.REQUEST_CORRECTED: "_corrected",
        s.SLA_BREACHED: "_breached", s.SLA_WARNING: "_warned", s.SURVEY_SENT: "_survey_sent",
        s.SURVEY_ANSWERED: "_answered", s.SURVEY_EXPIRED: "_expired", s.FOLLOWUP_SCHEDULED: "_followup_scheduled",
        s.FOLLOWUP_COMPLETED: "_followup_completed", s.REQUEST_MESSAGE: "_message", s.MESSAGE_IGNORED: "_ignored",
        s.REQUEST_REPLIED: "_replied",
    }

    def __post_init__(self) -> None:
        for name in ("acceptance", "fcr", "feedback", "csat", "complaint", "accuracy"):
            self.window.setdefault(name, Rolling())

    # -- applying events -------------------------------------------------------------------------
    def apply(self, subject: str, e: dict[str, Any]) -> None:
        at = _time(e.get("occurred_at"))
        if at is None:
            return
        self.last_event_at = max(at, self.last_event_at) if self.last_event_at else at
        handler = self.HANDLERS.get(subject)
        if handler is not None:
            getattr(self, handler)(e, at)
        self.applied += 1
        if not self.keep_all:
            self._prune(at)

    def _dept(self, value: Any) -> str:
        return bounded(value, self.departments, "other")

    def _received(self, e: dict[str, Any], at: datetime) -> None:
        channel = bounded(e.get("channel"), CHANNELS, "unknown")
        self.received[channel] += 1
        self.messages[(channel, "new")] += 1
        received_at = _time(e.get("received_at")) or at
        self.facts.setdefault(str(e.get("request_id")), Facts(channel=channel, received_at=received_at))

    def _message(self, e: dict[str, Any], at: datetime) -> None:
        """A follow-up: a message, never a request (kefu_requests_received_total does not count it)."""
        self.messages[(bounded(e.get("channel"), CHANNELS, "unknown"), "followup")] += 1
        f = self.facts.get(str(e.get("request_id")))
        if f is not None:
            f.followups_at = (*f.followups_at, at)

    def _ignored(self, e: dict[str, Any], at: datetime) -> None:
        self.messages[(bounded(e.get("channel"), CHANNELS, "unknown"), "auto")] += 1

    def _replied(self, e: dict[str, Any], at: datetime) -> None:
        f = self.facts.get(str(e.get("request_id")))
        if f is not None:
            self._responded(f, at)

    def _responded(self, f: Facts, at: datetime) -> None:
        """The first response (ART): the first accept or reply, whichever came first."""
        if f.responded_at is not None:
            return
        f.responded_at = at
        self.first_response.setdefault((f.channel, f.priority), Histogram(FIRST_RESPONSE_BUCKETS)).observe(
            max((at - f.received_at).total_seconds(), 0.0))

    def _rejected(self, e: dict[str, Any], at: datetime) -> None:
        self.rejected[(bounded(e.get("channel"), CHANNELS, "unknown"),
                       bounded(e.get("reason"), REJECTION_REASONS, "other"))] += 1

    def _assigned(self, e: dict[str, Any], at: datetime) -> None:
        rid = str(e.get("request_id"))
        f = self.facts.get(rid) or self.facts.setdefault(
            rid, Facts(channel=bounded(e.get("channel"), CHANNELS, "unknown"), received_at=at))
        if f.open or f.resolved_at:  # a re-delivered decision
            return
        f.category = bounded(e.get("category"), CATEGORIES, "unknown")
        f.priority = bounded(e.get("priority"), PRIORITIES, "unknown")
        f.department = self._dept(e.get("department"))
        f.emergency = bool(e.get("emergency"))
        topic = e.get("topic")
        f.topic = sys.intern(topic) if isinstance(topic, str) and len(topic) <= 100 else None
        due = e.get("due") or {}
        f.due_first, f.due_resolution = _time(due.get("first_response")), _time(due.get("resolution"))
        f.open = True
        self.assigned[(f.category, f.priority, f.department)] += 1
        self.window["complaint"].add(at, f.category == "complaint")

    def _accepted(self, e: dict[str, Any], at: datetime) -> None:
        f = self.facts.get(str(e.get("request_id")))
        if f is None or f.accepted_at is not None:
            return  # only the first acceptance counts for acceptance timeliness
        f.accepted_at = at
        timely = f.due_first is None or at <= f.due_first
        self.accepted[(f.channel, f.department, str(timely).lower())] += 1
        self.window["acceptance"].add(at, timely)
        self._responded(f, at)

    def _resolved(self, e: dict[str, Any], at: datetime) -> None:
        f = self.facts.get(str(e.get("request_id")))
        if f is None:
            return
        f.open = False
        if f.resolved_at is not None:
            return  # a later resolution after a reopen: the first one is measured
        f.resolved_at = at
        f.first_contact = bool(e.get("first_contact"))
        in_time = f.due_resolution is None or at <= f.due_resolution
        self.resolved[(f.channel, f.department, str(f.first_contact).lower(), str(in_time).lower())] += 1
        self.window["fcr"].add(at, f.first_contact)
        self.window["feedback"].add(at, in_time)
        self.window["accuracy"].add(at, f.accurate)
        f.credited = f.department
        self._department_accuracy(f.department).add(at, f.accurate)
        self.resolution.setdefault((f.channel, f.priority), Histogram(RESOLUTION_BUCKETS)).observe(
            max((at - f.received_at).total_seconds(), 0.0))

    def _reopened(self, e: dict[str, Any], at: datetime) -> None:
        rid = str(e.get("request_id"))
        f = self.facts.get(rid)
        if f is None:
            f = self._reopened_after_close(rid, e, at)
            if f is None:
                return
            self.reopened[f.department] += 1
            return
        was_accurate = f.accurate
        f.reopened += 1
        f.reopened_at = (*f.reopened_at, at)
        self._accuracy_lost(f, was_accurate)
        f.open = True
        f.priority = bounded(e.get("priority"), PRIORITIES, f.priority) if e.get("priority") else f.priority
        self.reopened[f.department] += 1

    def _accuracy_lost(self, f: Facts, was_accurate: bool) -> None:
        """A resolved request reopened or moved to another department no longer counts as accurate
        in the minute it was (first) resolved."""
        if was_accurate and not f.accurate and f.resolved_at is not None:
            self.window["accuracy"].add(f.resolved_at, -1, count=0)
            self._department_accuracy(f.credited or f.department).add(f.resolved_at, -1, count=0)

    def _department_accuracy(self, department: str) -> Rolling:
        return self.window.setdefault(f"accuracy:{department}", Rolling())

    def _reopened_after_close(self, rid: str, e: dict[str, Any], at: datetime) -> Facts | None:
        """A closed request's facts are gone (`_closed`): the reopened event says where it stood.
        Its first resolution's accuracy is taken back as it would have been from the facts; it is
        open again (for the open-requests gauge) and was accepted and resolved before (a later
        acceptance or resolution is not a first one)."""
        resolved = _time(e.get("first_resolved_at"))
        department = e.get("department")
        if resolved is None or not department:
            return None  # from a feedback older than the one that says it: nothing to go on
        if e.get("counted_accurate"):
            self.window["accuracy"].add(resolved, -1, count=0)
            self._department_accuracy(self._dept(department)).add(resolved, -1, count=0)
        f = Facts(channel=bounded(e.get("channel"), CHANNELS, "unknown"), received_at=resolved,
                  priority=bounded(e.get("priority"), PRIORITIES, "unknown"), department=self._dept(department),
                  accepted_at=resolved, responded_at=resolved, resolved_at=resolved, reopened=1, reopened_at=(at,), open=True)
        self.facts[rid] = f
        return f

    def _closed(self, e: dict[str, Any], at: datetime) -> None:
        rid = str(e.get("request_id"))
        f = self.facts.get(rid)
        if f is None:
            return
        f.open = False
        if not self.keep_all:
            # nothing but a reopen refers to a closed request again, and request.reopened carries
            # what the indicators need then: memory holds open and recently resolved requests only
            del self.facts[rid]

    def _transferred(self, e: dict[str, Any], at: datetime) -> None:
        f = self.facts.get(str(e.get("request_id")))
        department = e.get("department")
        if f is not None and department and self._dept(department) != f.department:
            was_accurate = f.accurate
            f.misrouted = True  # routed to the wrong department first
            f.department = self._dept(department)
            self._accuracy_lost(f, was_accurate)

    def _corrected(self, e: dict[str, Any], at: datetime) -> None:
        """An agent's correction: counted per field, under the department the judgement chose (for a
        department correction, the one it was moved from); the request no longer counts as accurate."""
        f = self.facts.get(str(e.get("request_id")))
        changes = [c for c in e.get("changes") or [] if isinstance(c, dict) and c.get("field") in CORRECTED_FIELDS]
        for change in changes:
            where = change.get("old") if change["field"] == "department" else e.get("department")
            self.corrections[(change["field"], self._dept(where))] += 1
            if f is not None and change["field"] == "priority":
                f.priority = bounded(change.get("new"), PRIORITIES, f.priority)
        if f is not None and changes:
            was_accurate = f.accurate
            f.misrouted = True
            self._accuracy_lost(f, was_accurate)

    def _breached(self, e: dict[str, Any], at: datetime) -> None:
        f = self.facts.get(str(e.get("request_id")))
        priority = bounded(e.get("priority"), PRIORITIES, f.priority if f else "unknown")
        sla = bounded(e.get("sla"), SLAS, "other")
        self.breaches[(sla, priority)] += 1
        if f is not None:
            f.breaches = (*f.breaches, (sla, at))

    def _warned(self, e: dict[str, Any], at: datetime) -> None:
        f = self.facts.get(str(e.get("request_id")))
        priority = bounded(e.get("priority"), PRIORITIES, f.priority if f else "unknown")
        self.warnings[(bounded(e.get("sla"), SLAS, "other"), priority)] += 1

    def _survey_sent(self, e: dict[str, Any], at: datetime) -> None:
        self.surveys_sent += 1

    def _answered(self, e: dict[str, Any], at: datetime) -> None:
        rating = e.get("rating")
        if isinstance(rating, int) and 1 <= rating <= 5:
            self.responses[str(rating)] += 1
            self.window["csat"].add(at, rating)
            f = self.facts.get(str(e.get("request_id")))
            if f is not None:
                f.rating, f.rated_at = rating, at

    def _expired(self, e: dict[str, Any], at: datetime) -> None:
        self.surveys_expired += 1

    def _followup_scheduled(self, e: dict[str, Any], at: datetime) -> None:
        due = _time(e.get("due"))
        fid = str(e.get("followup_id"))
        if due is not None and fid not in self.followup_due:
            self.followup_due[fid] = due
            self.followup_request[fid] = str(e.get("request_id"))
            self.followups["scheduled"] += 1

    def _followup_completed(self, e: dict[str, Any], at: datetime) -> None:
        outcome = bounded(e.get("outcome"), ("resolved", "recurred", "unreachable"), "other")
        fid = str(e.get("followup_id"))
        if fid in self.followup_done:
            return
        self.followup_done.add(fid)
        self.followups[outcome] += 1
        self.revisits_done.append((at, fid))

    def _prune(self, now: datetime) -> None:
        """Bounded memory: revisits done and (amortised) window buckets and facts of closed requests
        older than the longest window."""
        horizon = now - KEEP
        while self.revisits_done and self.revisits_done[0][0] < horizon:
            self.revisits_done.popleft()
        if self.applied % 5000 == 0:  # amortised
            self.compact(now)

    def compact(self, now: datetime) -> None:
        horizon = now - KEEP
        for rolling in self.window.values():
            rolling.prune(horizon)
        for rid in [rid for rid, f in self.facts.items()
                    if not f.open and (f.resolved_at or f.received_at) < horizon]:
            del self.facts[rid]
        for fid in [fid for fid, due in self.followup_due.items() if due < horizon - KEEP]:
            del self.followup_due[fid]
            self.followup_request.pop(fid, None)
            self.followup_done.discard(fid)

    # -- reading ---------------------------------------------------------------------------------
    def open_requests(self) -> Counter[tuple[str, str]]:
        return Counter((f.department, f.priority) for f in self.facts.values() if f.open)

    def oldest_open_emergency(self) -> datetime | None:
        times = [f.received_at for f in self.facts.values() if f.open and f.emergency]
        return min(times) if times else None

    def department_accuracy(self, now: datetime) -> dict[str, dict[str, float | None]]:
        """Processing accuracy per window and department (the department of the first resolution)."""
        return {window: {d: self.window[f"accuracy:{d}"].share(now - length) if f"accuracy:{d}" in self.window else None
                         for d in [*self.departments, "other"]}
                for window, length in WINDOWS.items()}

    def ratios(self, now: datetime) -> dict[str, dict[str, float | None]]:
        """Each ratio per window; None when there is nothing to divide (no series value). Reads the
        minute buckets, never the facts: a scrape costs the same at 1,000 or 1,000,000 requests a week."""
        out: dict[str, dict[str, float | None]] = {}
        done = {fid for _, fid in self.revisits_done}
        for window, length in WINDOWS.items():
            since = now - length
            due = [fid for fid, d in self.followup_due.items() if since <= d <= now]
            share = {name: rolling.share(since) for name, rolling in self.window.items() if ":" not in name}
            out[window] = {
                "acceptance_timeliness": share["acceptance"],
                "first_contact_resolution": share["fcr"],
                "feedback_timeliness": share["feedback"],
                "processing_accuracy": share["accuracy"],
                "complaint": share["complaint"],
                "revisit_completion": (sum(1 for fid in due if fid in done) / len(due)) if due else None,
                "csat": share["csat"],
            }
        return out
