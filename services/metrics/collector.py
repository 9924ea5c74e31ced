"""The projection as Prometheus metrics. Every bounded label combination exists from the start."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .domain.indicators import (
    CATEGORIES,
    CHANNELS,
    CORRECTED_FIELDS,
    FIRST_RESPONSE_BUCKETS,
    PRIORITIES,
    REJECTION_REASONS,
    RESOLUTION_BUCKETS,
    SLAS,
    Histogram,
    Projection,
)

RATIOS = {
    "acceptance_timeliness": ("kefu_acceptance_timeliness_ratio",
                              "Share of first acceptances at or before the first-response due time."),
    "first_contact_resolution": ("kefu_first_contact_resolution_ratio", "Share of first resolutions at first contact."),
    "feedback_timeliness": ("kefu_feedback_timeliness_ratio",
                            "Share of results sent (at resolution) at or before the resolution due time."),
    "processing_accuracy": ("kefu_processing_accuracy_ratio",
                            "Share of first resolutions never reopened, nor transferred to another department, "
                            "nor corrected by an agent."),
    "complaint": ("kefu_complaint_ratio", "Share of complaints among routed requests."),
    "revisit_completion": ("kefu_revisit_completion_ratio", "Share of revisits due that were completed."),
    "csat": ("kefu_csat_score", "Mean satisfaction rating (1-5)."),
}


class IndicatorCollector(Collector):
    def __init__(self, projection: Projection, now: Callable[[], datetime]) -> None:
        self.p = projection
        self.now = now

    def collect(self) -> Iterable[Metric]:
        p = self.p
        departments = [*p.departments, "other"]
        yield _counter("kefu_requests_received", "Requests received, by channel.", ["channel"],
                       {(c,): p.received[c] for c in CHANNELS})
        yield _counter("kefu_messages_received", "Customer messages, by channel and kind: new (made a request), "
                       "followup (appended to one), auto (auto-generated mail, ignored).", ["channel", "kind"],
                       {(c, k): p.messages[(c, k)] for c in CHANNELS for k in ("new", "followup", "auto")})
        yield _counter("kefu_requests_rejected", "Payloads rejected, by channel and reason.", ["channel", "reason"],
                       {(c, r): p.rejected[(c, r)] for c in [*CHANNELS, "unknown"] for r in [*REJECTION_REASONS, "other"]})
        yield _counter("kefu_requests_assigned", "Requests routed, by category, priority and lead department.",
                       ["category", "priority", "department"],
                       {(c, pr, d): p.assigned[(c, pr, d)] for c in CATEGORIES for pr in PRIORITIES for d in departments})
        yield _counter("kefu_requests_accepted", "First acceptances, by channel, department and whether in time.",
                       ["channel", "department", "in_time"],
                       {(c, d, t): p.accepted[(c, d, t)] for c in CHANNELS for d in departments for t in ("true", "false")})
        yield _counter("kefu_requests_resolved", "First resolutions, by channel, department, whether at first "
                       "contact and whether by the resolution due time.",
                       ["channel", "department", "first_contact", "in_time"],
                       {(c, d, f, t): p.resolved[(c, d, f, t)] for c in CHANNELS for d in departments
                        for f in ("true", "false") for t in ("true", "false")})
        yield _counter("kefu_requests_reopened", "Requests taken up again, by department.", ["department"],
                       {(d,): p.reopened[d] for d in departments})
        yield _counter("kefu_judgement_corrections", "Agents' corrections of routing's judgement, by field (category, "
                       "priority, department) and the department the judgement chose.", ["field", "department"],
                       {(f, d): p.corrections[(f, d)] for f in CORRECTED_FIELDS for d in departments})
        yield _counter("kefu_sla_breaches", "Deadlines missed, by deadline and priority.", ["sla", "priority"],
                       {(s, pr): p.breaches[(s, pr)] for s in SLAS for pr in PRIORITIES})
        yield _counter("kefu_sla_warnings", "Deadlines near, by deadline and priority.", ["sla", "priority"],
                       {(s, pr): p.warnings[(s, pr)] for s in SLAS for pr in PRIORITIES})
        yield _counter("kefu_survey_responses", "Survey answers, by rating.", ["rating"],
                       {(str(r),): p.responses[str(r)] for r in range(1, 6)})
        yield _counter("kefu_surveys_sent", "Surveys sent.", [], {(): p.surveys_sent})
        yield _counter("kefu_surveys_expired", "Surveys expired unanswered.", [], {(): p.surveys_expired})
        yield _counter("kefu_followups_scheduled", "Revisits scheduled.", [], {(): p.followups["scheduled"]})
        yield _counter("kefu_followups_completed", "Revisits done, by outcome.", ["outcome"],
                       {(o,): p.followups[o] for o in ("resolved", "recurred", "unreachable")})
        yield _histogram("kefu_first_response_seconds", "Time from received to the first response: the first accept or reply.",
                         p.first_response, FIRST_RESPONSE_BUCKETS)
        yield _histogram("kefu_resolution_seconds", "Time from received to first resolution.",
                         p.resolution, RESOLUTION_BUCKETS)
        open_now = p.open_requests()
        gauge = GaugeMetricFamily("kefu_open_requests", "Requests routed and not yet resolved or closed.",
                                  labels=["department", "priority"])
        for d in departments:
            for pr in PRIORITIES:
                gauge.add_metric([d, pr], open_now[(d, pr)])
        yield gauge
        oldest = p.oldest_open_emergency()
        emergency = GaugeMetricFamily("kefu_oldest_open_emergency_received_timestamp_seconds",
                                      "When the oldest open emergency was received (absent when none is open).")
        if oldest is not None:
            emergency.add_metric([], oldest.timestamp())
        yield emergency
        ratios = p.ratios(self.now())
        for key, (name, help_text) in RATIOS.items():
            family = GaugeMetricFamily(name, help_text + " Over a rolling window.", labels=["window"])
            for window, values in ratios.items():
                value = values[key]
                if value is not None:
                    family.add_metric([window], value)
            yield family
        by_department = GaugeMetricFamily(
            "kefu_processing_accuracy_by_department_ratio", "Processing accuracy (处理准确率) per department of the "
            "first resolution: never reopened, moved to another department or corrected. Over a rolling window.",
            labels=["department", "window"])
        for window, values in p.department_accuracy(self.now()).items():
            for department, value in values.items():
                if value is not None:
                    by_department.add_metric([department, window], value)
        yield by_department
        last = GaugeMetricFamily("kefu_metrics_last_event_timestamp_seconds", "Time of the newest event applied.")
        if p.last_event_at is not None:
            last.add_metric([], p.last_event_at.timestamp())
        yield last
        yield _counter("kefu_metrics_events_applied", "Events the projection has applied since start.", [],
                       {(): p.applied})


def _counter(name: str, help_text: str, labels: list[str], values: dict[tuple[str, ...], float]) -> Metric:
    family = CounterMetricFamily(name, help_text, labels=labels)
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family


def _histogram(name: str, help_text: str, data: dict[tuple[str, str], Histogram],
               buckets: tuple[float, ...]) -> Metric:
    family = HistogramMetricFamily(name, help_text, labels=["channel", "priority"])
    for c in CHANNELS:
        for pr in PRIORITIES:
            h = data.get((c, pr)) or Histogram(buckets)
            family.add_metric([c, pr], h.cumulative(), h.total)
    return family
