"""Generate the Grafana dashboards in deploy/grafana/dashboards/ from the panel lists below.

Every metrics replica exports the same business series: each query reduces them with `max` (by
all their labels) before any sum, so the panels read the same with one replica or five.

`make dashboards` writes them; a test regenerates them in memory and fails when the committed copies
differ, and another extracts every panel query and has promtool check it as PromQL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
OUT = ROOT / "deploy" / "grafana" / "dashboards"
RULES = ROOT / "deploy" / "prometheus" / "rules"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "overlays" / "prod" / "prometheusrule.yaml"
DATASOURCE = {"type": "prometheus", "uid": "kefu-prometheus"}

# (title, unit, [expressions with legends], kind); kind: timeseries | stat | gauge | bargauge | table
Panel = tuple[str, str, list[tuple[str, str]], str]

DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "kefu-overview": ("kefu · overview: indicators against targets", [
        ("Acceptance timeliness (24h, target 95%)", "percentunit",
         [('max(kefu_acceptance_timeliness_ratio{window="24h"})', "24h")], "gauge"),
        ("Average first response (1h, target ≤ 30 min)", "s", [("kefu:kefu_first_response_seconds:mean1h", "ART")], "stat"),
        ("First-contact resolution (24h, target ≥ 80%)", "percentunit",
         [('max(kefu_first_contact_resolution_ratio{window="24h"})', "24h")], "gauge"),
        ("Processing accuracy (7d)", "percentunit", [('max(kefu_processing_accuracy_ratio{window="7d"})', "7d")], "gauge"),
        ("Feedback timeliness (24h)", "percentunit", [('max(kefu_feedback_timeliness_ratio{window="24h"})', "24h")], "gauge"),
        ("CSAT (7d, 1–5)", "none", [('max(kefu_csat_score{window="7d"})', "7d")], "stat"),
        ("Complaint rate (7d)", "percentunit", [('max(kefu_complaint_ratio{window="7d"})', "7d")], "stat"),
        ("Revisit completion (7d)", "percentunit", [('max(kefu_revisit_completion_ratio{window="7d"})', "7d")], "stat"),
        ("Requests received by channel", "reqps", [("channel:kefu_requests_received:rate5m", "{{channel}}")], "timeseries"),
        ("Customer messages: new requests, follow-ups, machine mail ignored", "reqps",
         [("kind:kefu_messages_received:rate5m", "{{kind}}")], "timeseries"),
        ("Requests routed by department", "reqps", [("department:kefu_requests_assigned:rate5m", "{{department}}")],
         "timeseries"),
        ("Open requests by department and priority", "none",
         [("max by (department, priority) (kefu_open_requests)", "{{department}} {{priority}}")], "bargauge"),
        ("Acceptance timeliness by department (1d)", "percentunit",
         [("department:kefu_acceptance_timeliness:ratio_rate1d", "{{department}}")], "bargauge"),
        ("First-contact resolution by department (1d)", "percentunit",
         [("department:kefu_first_contact_resolution:ratio_rate1d", "{{department}}")], "bargauge"),
        ("Average first response by channel (1h)", "s",
         [("channel:kefu_first_response_seconds:mean1h", "{{channel}}")], "bargauge"),
    ]),
    "kefu-sla": ("kefu · SLA", [
        ("First-response SLO error ratio (target ≤ 5%)", "percentunit",
         [("kefu:first_response_sla_errors:ratio_rate1h", "1h"), ("kefu:first_response_sla_errors:ratio_rate6h", "6h"),
          ("kefu:first_response_sla_errors:ratio_rate3d", "3d")], "timeseries"),
        ("Resolution SLO error ratio (target ≤ 5%)", "percentunit",
         [("kefu:resolution_sla_errors:ratio_rate1h", "1h"), ("kefu:resolution_sla_errors:ratio_rate6h", "6h"),
          ("kefu:resolution_sla_errors:ratio_rate3d", "3d")], "timeseries"),
        ("SLA breaches (15 min)", "none", [("sla:kefu_sla_breaches:increase15m", "{{sla}}")], "timeseries"),
        ("SLA warnings by priority (1h)", "none",
         [("sum by (priority) (max by (sla, priority) (increase(kefu_sla_warnings_total[1h])))", "{{priority}}")], "bargauge"),
        ("Oldest open emergency (age)", "s",
         [("time() - max(kefu_oldest_open_emergency_received_timestamp_seconds)", "age")], "stat"),
        ("First response time, p50 / p90", "s",
         [("histogram_quantile(0.5, sum by (le) (max by (le, channel, priority) (rate(kefu_first_response_seconds_bucket[1h]))))", "p50"),
          ("histogram_quantile(0.9, sum by (le) (max by (le, channel, priority) (rate(kefu_first_response_seconds_bucket[1h]))))", "p90")],
         "timeseries"),
        ("Resolution time, p50 / p90", "s",
         [("histogram_quantile(0.5, sum by (le) (max by (le, channel, priority) (rate(kefu_resolution_seconds_bucket[6h]))))", "p50"),
          ("histogram_quantile(0.9, sum by (le) (max by (le, channel, priority) (rate(kefu_resolution_seconds_bucket[6h]))))", "p90")], "timeseries"),
    ]),
    "kefu-feedback": ("kefu · feedback", [
        ("CSAT", "none", [('max(kefu_csat_score{window="24h"})', "24h"), ('max(kefu_csat_score{window="7d"})', "7d")],
         "timeseries"),
        ("CSAT (1d, from answers)", "none", [("kefu:kefu_csat:mean1d", "1d")], "stat"),
        ("Survey answers by rating (7d)", "none",
         [("max by (rating) (increase(kefu_survey_responses_total[7d]))", "{{rating}}")], "bargauge"),
        ("Surveys sent, answered, expired (1d)", "none",
         [("max(increase(kefu_surveys_sent_total[1d]))", "sent"),
          ("sum(max by (rating) (increase(kefu_survey_responses_total[1d])))", "answered"),
          ("max(increase(kefu_surveys_expired_total[1d]))", "expired")], "bargauge"),
        ("Processing accuracy by department (7d)", "percentunit",
         [('max by (department) (kefu_processing_accuracy_by_department_ratio{window="7d"})', "{{department}}")],
         "bargauge"),
        ("Judgement corrections by field (7d)", "none",
         [("sum by (field) (max by (field, department) (increase(kefu_judgement_corrections_total[7d])))", "{{field}}")],
         "bargauge"),
        ("Reopened by department (7d)", "none",
         [("max by (department) (increase(kefu_requests_reopened_total[7d]))", "{{department}}")], "bargauge"),
        ("Revisits (7d)", "none",
         [("max(increase(kefu_followups_scheduled_total[7d]))", "scheduled"),
          ("max by (outcome) (increase(kefu_followups_completed_total[7d]))", "{{outcome}}")], "bargauge"),
    ]),
    "kefu-pipeline": ("kefu · pipeline health", [
        ("Services up", "none", [('up{job=~"kefu-.*"}', "{{job}}")], "stat"),
        ("Intake outcomes by channel", "reqps",
         [("sum by (channel, outcome) (rate(kefu_intake_payloads_total[5m]))", "{{channel}} {{outcome}}")],
         "timeseries"),
        ("Rejections by reason", "reqps",
         [("sum by (reason) (max by (channel, reason) (rate(kefu_requests_rejected_total[5m])))", "{{reason}}")], "timeseries"),
        ("Consumer backlog", "none",
         [("max by (job, consumer) (kefu_consumer_pending_messages)", "{{job}} {{consumer}}")], "timeseries"),
        ("Unacknowledged messages", "none",
         [("max by (job, consumer) (kefu_consumer_ack_pending_messages)", "{{job}} {{consumer}}")], "timeseries"),
        ("Published (stored / duplicate)", "ops",
         [("sum by (job, outcome) (rate(kefu_messages_published_total[5m]))", "{{job}} {{outcome}}")], "timeseries"),
        ("Redelivered and dead-lettered", "ops",
         [("sum by (job) (rate(kefu_messages_redelivered_total[5m]))", "redelivered {{job}}"),
          ("sum by (job) (rate(kefu_messages_dead_lettered_total[5m]))", "dead-lettered {{job}}")], "timeseries"),
        ("Handler latency p99", "s",
         [("histogram_quantile(0.99, sum by (le, job) (rate(faststream_received_processed_messages_duration_seconds_bucket[5m])))",
           "{{job}}")], "timeseries"),
        ("Metrics replay lag", "s", [("time() - kefu_metrics_last_event_timestamp_seconds", "{{instance}}")], "stat"),
    ]),
}


def panel(index: int, spec: Panel) -> dict[str, Any]:
    title, unit, exprs, kind = spec
    width = 6 if kind in ("stat", "gauge") else 12
    per_row = 24 // width
    return {
        "id": index + 1,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": (index % per_row) * width, "y": (index // per_row) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["kefu"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "panels": [panel(i, p) for i, p in enumerate(panels)],
    }


def documents() -> dict[str, str]:
    return {
        f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2, ensure_ascii=False) + "\n"
        for uid, (title, panels) in DASHBOARDS.items()
    }


def prometheus_rule() -> str:
    """deploy/prometheus/rules as one PrometheusRule for kube-prometheus-stack (the same groups)."""
    import yaml

    groups = [g for name in ("recording.yml", "alerts.yml")
              for g in yaml.safe_load((RULES / name).read_text())["groups"]]
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "kefu", "labels": {"release": "kube-prometheus-stack"}},
            "spec": {"groups": groups}}
    head = ("# Generated from deploy/prometheus/rules by `make docs` (devtools/gen_dashboards.py): do not edit.\n"
            "# `release`: the label your Prometheus's ruleSelector matches (the Helm release name).\n")
    return head + yaml.safe_dump(rule, sort_keys=False, allow_unicode=True, width=120)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in documents().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")
    PROMETHEUS_RULE.write_text(prometheus_rule(), encoding="utf-8")
    print(f"wrote {PROMETHEUS_RULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
