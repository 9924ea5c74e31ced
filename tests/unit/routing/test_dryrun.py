"""The policy dry-run (services/routing/domain/dryrun.py): recorded requests against a candidate
configuration; the same configuration changes nothing; a changed responsibility moves requests;
a stricter SLA target is measured on the real timeline."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.routing.domain.dryrun import Recorded, decide, dry_run, table
from services.routing.domain.rules import RoutingConfig
from shared.contract.enums import Channel, Language
from shared.contract.models import CustomerRef, RequestReceived

CONFIG = Path(__file__).parents[3] / "config"
MONDAY_10 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working Monday


@pytest.fixture(scope="module")
def current() -> RoutingConfig:
    return RoutingConfig.load(CONFIG)


def candidate(tmp_path: Path, edit: tuple[str, str, str]) -> RoutingConfig:
    shutil.copytree(CONFIG, tmp_path / "config")
    name, old, new = edit
    path = tmp_path / "config" / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return RoutingConfig.load(tmp_path / "config")


def recorded(current: RoutingConfig, n: int, text: str, *, accepted_after: timedelta | None) -> Recorded:
    request = RequestReceived(request_id=f"req_{n:026d}".replace("0", "a"), channel=Channel.sms, source_id=f"SM{n}",
                              received_at=MONDAY_10, customer=CustomerRef(phone="+8613800000000"), body=text,
                              language=Language.zh)
    return Recorded(received=request, assigned=decide(request, config=current),
                    accepted_at=MONDAY_10 + accepted_after if accepted_after else None)


def test_the_same_configuration_changes_nothing(current) -> None:
    requests = [recorded(current, 1, "请问会员积分怎么查询", accepted_after=timedelta(minutes=5)),
                recorded(current, 2, "家里燃气泄漏了", accepted_after=timedelta(minutes=2))]
    report = dry_run(requests, candidate=current, until=MONDAY_10 + timedelta(days=10))
    assert all(c.changed == 0 for c in report.changes.values())
    first = report.attainment["first_response"]
    assert (first.judged, first.met_recorded, first.met_candidate) == (2, 2, 2)


def test_a_changed_responsibility_and_a_stricter_target_show(current, tmp_path) -> None:
    cfg = candidate(tmp_path, ("departments.yaml", "business_inquiry: {lead: business}",
                               "business_inquiry: {lead: customer_service}"))
    sla = tmp_path / "config" / "sla.yaml"
    sla.write_text(sla.read_text(encoding="utf-8").replace(
        "{name: normal-inquiry,  match: {category: inquiry}, first_response: 30m,",
        "{name: normal-inquiry,  match: {category: inquiry}, first_response: 10m,"), encoding="utf-8")
    cfg = RoutingConfig.load(tmp_path / "config")
    requests = [recorded(current, 1, "请问会员积分怎么查询", accepted_after=timedelta(minutes=20)),
                recorded(current, 2, "请问会员积分怎么查询", accepted_after=timedelta(minutes=5)),
                recorded(current, 3, "请问会员积分怎么查询", accepted_after=None),  # still open, past both deadlines
                Recorded(received=recorded(current, 4, "x", accepted_after=None).received)]  # no decision recorded
    report = dry_run(requests, candidate=cfg, until=MONDAY_10 + timedelta(days=3))
    assert report.requests == 4 and report.without_decision == 1
    moved = report.changes["department"]
    assert moved.changed == 3 and moved.transitions == {"business -> customer_service": 3}
    assert report.volumes == {"business": {"recorded": 3, "candidate": 0},
                              "customer_service": {"recorded": 0, "candidate": 3}}
    first = report.attainment["first_response"]
    assert (first.judged, first.met_recorded, first.met_candidate) == (3, 2, 1)  # 20 min: met at 30, not at 10
    assert "business -> customer_service (3)" in table(report)


def test_agents_corrections_are_the_ground_truth_a_candidate_is_measured_against(current, tmp_path) -> None:
    """Two corrected requests: "积分" questions agents said were complaints, and a department move.
    The current rules agree with none (they made the decisions corrected); a candidate with a rule
    for the agents' word agrees with the category corrections it covers."""
    from shared.contract.models import RequestCorrected

    def corrected(r: Recorded, *changes: tuple[str, str, str]) -> Recorded:
        r.corrections.append(RequestCorrected(
            request_id=r.received.request_id, actor="a1", reason="x", department="business", queue="business.normal",
            occurred_at=MONDAY_10 + timedelta(hours=1),
            changes=[{"field": f, "old": old, "new": new} for f, old, new in changes]))
        return r

    requests = [corrected(recorded(current, 1, "积分怎么突然清零了", accepted_after=None),
                          ("category", "inquiry", "complaint")),
                corrected(recorded(current, 2, "积分清零以后还能恢复吗", accepted_after=None),
                          ("category", "inquiry", "help")),
                corrected(recorded(current, 3, "请问营业厅几点开门", accepted_after=None),
                          ("department", "business", "customer_service"))]
    assert [r.assigned.category.value for r in requests[:2]] == ["inquiry", "inquiry"]
    same = dry_run(requests, candidate=current, until=MONDAY_10)
    assert same.corrections["category"].model_dump() == {"corrected": 2, "candidate_agrees": 0}
    assert same.corrections["department"].model_dump() == {"corrected": 1, "candidate_agrees": 0}
    changed = candidate(tmp_path, ("rules.yaml", "phrases: [投诉, 抱怨,", "phrases: [投诉, 突然清零, 抱怨,"))
    report = dry_run(requests, candidate=changed, until=MONDAY_10)
    assert report.corrections["category"].model_dump() == {"corrected": 2, "candidate_agrees": 1}
    assert "category 1/2" in table(report)
