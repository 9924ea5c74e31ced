"""deploy/prometheus and deploy/grafana: valid config, tested alerts, valid PromQL in every panel,
and no metric name that no service exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from devtools import gen_dashboards

ROOT = Path(__file__).parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"


def promtool(*args: str, cwd: Path = ROOT) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool (Debian's prometheus package) is needed; .ci/run installs it"
    proc = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_prometheus_config_and_rules_are_valid() -> None:
    out = promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert "SUCCESS" in out and "21 rules found" in out and "13 rules found" in out


def test_every_alert_fires_when_it_should_and_stays_silent_when_it_should_not() -> None:
    tests = yaml.safe_load((PROMETHEUS / "tests" / "rules_test.yml").read_text())
    alerts = {r["alert"] for g in yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    firing, silent = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == alerts and silent == alerts, (alerts - firing, alerts - silent)
    assert "SUCCESS" in promtool("test", "rules", "rules_test.yml", cwd=PROMETHEUS / "tests")


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_dashboards_are_what_the_generator_makes() -> None:
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == gen_dashboards.documents(), "run `make dashboards` and commit"


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:panel_{i}:check", "expr": target["expr"]}
             for i, target in enumerate(t for d in dashboards().values() for p in d["panels"] for t in p["targets"])]
    assert len(rules) > 40
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    assert f"{len(rules)} rules found" in promtool("check", "rules", str(path))


def test_dashboards_use_the_provisioned_datasource_and_unique_uids() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    boards = dashboards()
    assert {"kefu-overview.json", "kefu-sla.json", "kefu-feedback.json", "kefu-pipeline.json"} == set(boards)
    assert len({d["uid"] for d in boards.values()}) == len(boards)
    for board in boards.values():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid and all(t["datasource"]["uid"] == uid for t in panel["targets"])


def exported_metric_names() -> set[str]:
    """Every metric family some kefu service exports (HELP lines appear even before any sample)."""
    from services.console.app import create_app as console
    from services.feedback.app import create_app as feedback
    from services.gateway.app import create_app as gateway
    from services.intake.app import create_app as intake
    from services.metrics.app import create_app as metrics
    from services.routing.app import create_app as routing

    names = set()
    for create_app in (intake, routing, feedback, metrics, console, gateway):
        text = generate_latest(create_app().state.runtime.registry).decode()
        names |= set(re.findall(r"^# HELP (\S+)", text, flags=re.M))
    return names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_metric_names()


def referenced(text: str) -> set[str]:
    names = set(re.findall(r"\b(kefu_[a-z_]+)", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_rules_and_dashboards_only_use_exported_metrics(exported: set[str]) -> None:
    # counters are announced without their _total in HELP lines
    known = exported | {f"{n}_total" for n in exported}
    texts = [p.read_text() for p in (PROMETHEUS / "rules").glob("*.yml")] + [
        p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")]
    used = set().union(*(referenced(t) for t in texts))
    recorded = {n for t in texts for n in re.findall(r"record: \S*:(kefu_[a-z_]+):", t)}
    missing = sorted(used - known - recorded)
    assert missing == [], missing
    assert "kefu_requests_received_total" in used and "kefu_first_response_seconds" in used


PER_INSTANCE = {"kefu_metrics_last_event_timestamp_seconds"}  # replay lag: per replica on purpose


def metrics_service_families() -> set[str]:
    """Families only the metrics service exports: the business series every replica exports whole."""
    from services.feedback.app import create_app as feedback
    from services.intake.app import create_app as intake
    from services.metrics.app import create_app as metrics
    from services.routing.app import create_app as routing

    def names(create_app) -> set[str]:
        text = generate_latest(create_app().state.runtime.registry).decode()
        return {n.removesuffix("_total") for n in re.findall(r"^# HELP (\S+)", text, flags=re.M)}

    return names(metrics) - names(intake) - names(routing) - names(feedback)


def test_every_business_series_is_counted_once_whatever_the_replicas() -> None:
    """Each metrics replica exports the whole log's totals: every query over them reduces the
    replicas with max (by all of the series' labels, or to one value) before anything else."""
    families = metrics_service_families() - PER_INSTANCE
    assert {"kefu_requests_received", "kefu_open_requests", "kefu_first_response_seconds"} <= families
    exprs = [r["expr"] for g in yaml.safe_load((PROMETHEUS / "rules" / "recording.yml").read_text())["groups"]
             for r in g["rules"]]
    exprs += [r["expr"] for g in yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
              for r in g["rules"]]
    exprs += [t["expr"] for d in dashboards().values() for p in d["panels"] for t in p["targets"]]
    wrapped = r"max(?: by \([a-z_, ]+\) )?\((?:(?:rate|increase)\()?$"
    unguarded = []
    for expr in exprs:
        for m in re.finditer(r"(?<![:\w])(kefu_[a-z_]+?)(?:_total|_bucket|_sum|_count)?\b", expr):
            if m.group(1) in families and not re.search(wrapped, expr[:m.start()]):
                unguarded.append(expr)
    assert unguarded == []


def test_every_metric_the_docs_name_is_exported(exported: set[str]) -> None:
    known = exported | {f"{n}_total" for n in exported} | {n.removesuffix("_total") for n in exported}
    texts = {p.name: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    metric = r"(?<![:\w])(kefu_[a-z_]+(?:_total|_seconds|_ratio|_score|_messages|_bucket|_sum|_count)|kefu_[a-z_]+(?=\{))"
    named = {(name, n) for name, text in texts.items() for n in re.findall(metric, text)}
    missing = sorted((doc, n) for doc, n in named
                     if re.sub(r"_(bucket|sum|count)$", "", n) not in known and not n.startswith("kefu_test"))
    assert missing == [], missing
