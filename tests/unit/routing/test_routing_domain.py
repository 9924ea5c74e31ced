from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.routing.domain.assign import departments_for
from services.routing.domain.classify import judge
from services.routing.domain.lifecycle import Context
from services.routing.domain.messages import Templates, receipt
from services.routing.domain.route import route_request
from services.routing.domain.rules import PhraseRule, RoutingConfig
from shared.config import ConfigError, load_yaml_model
from shared.contract.enums import Category, Channel, Language, Priority, Tier
from shared.contract.models import CustomerRef, Hints, RequestReceived

CONFIG = Path(__file__).parents[3] / "config"


@pytest.fixture(scope="module")
def config() -> RoutingConfig:
    return RoutingConfig.load(CONFIG)


def j(config: RoutingConfig, text: str, hints: Hints | None = None, tier: Tier = Tier.standard):
    return judge(text=text, hints=hints or Hints(), tier=tier, rules=config.rules)


def test_english_phrases_match_whole_words_only() -> None:
    rule = PhraseRule(name="fire", phrases=["fire"])
    assert rule.matches("there is a fire in the hall")
    assert not rule.matches("the firewall blocks me") and not rule.matches("he was fired")


def test_unless_phrases_are_removed_before_matching() -> None:
    rule = PhraseRule(name="fire", phrases=["fire"], unless=["fire extinguisher"])
    assert not rule.matches("the fire extinguisher is out of stock")
    assert rule.matches("there is a fire and the fire extinguisher is empty")


def _regex_only(rule: PhraseRule, text: str) -> bool:
    return rule.found(text) is not None


def _every_rule(config: RoutingConfig) -> list[PhraseRule]:
    r = config.rules
    return [*r.emergency, *r.categories, *r.important, *r.complex, *r.topics]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_substring_prefilter_never_changes_a_rule_verdict(config, data) -> None:
    """Texts made of pieces of the configured phrases (and of their `unless` phrases) with noise
    between them: `matches` (prefilter, then regex) agrees with the regex alone for every rule,
    with its own needles or with the rule set's needles found once."""
    rules = _every_rule(config)
    words = config.rules.words
    pieces = sorted({p.lower() for r in rules for p in [*r.phrases, *r.unless]} | {w for ws in words.values() for w in ws}
                    | set(config.rules.negations) | set(config.rules.not_negations))
    pieces = [p.replace("~", "") for p in pieces if "{" not in p]
    fragment = st.one_of(st.sampled_from(pieces), st.sampled_from(pieces).map(lambda p: p[: max(1, len(p) // 2)]),
                         st.text(alphabet="ab 1,。的了", max_size=4))
    text = "".join(data.draw(st.lists(fragment, max_size=8)))
    present = config.rules.present(text)  # judge's way: every needle looked for once
    for rule in rules:
        assert rule.matches(text) == _regex_only(rule, text), (rule.name, text)
        assert rule.matches(text, present) == _regex_only(rule, text), (rule.name, text)


def test_adapter_hint_is_an_input_not_a_verdict(config) -> None:
    # the adapter says "inquiry", the words say gas leak: urgent emergency
    result = j(config, "请问一下，家里有煤气味怎么办", Hints(category=Category.inquiry))
    assert result.emergency and result.priority is Priority.urgent
    # a hint decides when the words say nothing
    assert j(config, "订单 8812", Hints(category=Category.complaint)).category is Category.complaint


def test_adapter_urgency_without_emergency_words_is_important(config) -> None:
    result = j(config, "请尽快回电", Hints(urgency=Priority.urgent))
    assert result.priority is Priority.important and not result.emergency


def test_vip_complaint_is_important(config) -> None:
    assert j(config, "我要投诉你们的服务", tier=Tier.vip).priority is Priority.important
    assert j(config, "我要投诉你们的服务").priority is Priority.normal


def test_escalating_complaint_is_important(config) -> None:
    assert j(config, "第三次投诉了，再不解决我就找媒体曝光").priority is Priority.important


def test_product_quality_complaint_involves_quality_production_and_after_sales(config) -> None:
    topic, lead, co = departments_for(j(config, "洗衣机用了一周就坏了，质量太差"), config.departments)
    assert (topic, lead) == ("product_quality", "quality")
    assert co[:2] == ["production", "after_sales"]


def test_staff_conduct_brings_in_hr(config) -> None:
    _, lead, co = departments_for(j(config, "营业员态度恶劣，辱骂客户"), config.departments)
    assert lead == "customer_service" and "hr" in co


def test_no_topic_falls_back_to_the_category_default(config) -> None:
    _, lead, co = departments_for(j(config, "希望多开几家店"), config.departments)
    assert lead == "coordination" and co == []


def request(text: str, tier: Tier = Tier.standard) -> RequestReceived:
    return RequestReceived(
        request_id="req_" + "a" * 26, channel=Channel.wechat, source_id="1",
        received_at=datetime(2026, 11, 24, 2, 0, tzinfo=UTC),
        customer=CustomerRef(customer_id="c-1", tier=tier, wechat_openid="oX"),
        body=text, language=Language.zh,
    )


def assign(config: RoutingConfig, req: RequestReceived):
    ctx = Context(now=req.received_at, sla=config.sla, templates=load_yaml_model(CONFIG / "messages.yaml", Templates),
                  offer_timeout=timedelta(minutes=2), max_offers=2)
    return route_request(req, rules=config, ctx=ctx).assignment


def test_assignment_of_an_emergency_runs_on_the_24x7_clock(config) -> None:
    req = request("热水器冒烟了，有烧焦的味道")  # Tuesday 24 Nov 2026, 10:00 in Shanghai
    result = assign(config, req)
    assert result.emergency and result.priority is Priority.urgent
    assert result.queue == f"{result.department}.urgent"
    assert "coordination" in result.co_departments
    assert result.due.first_response - req.received_at == timedelta(minutes=10)
    assert result.due.resolution - req.received_at == timedelta(hours=8)


def test_vip_goes_to_the_vip_queue_with_faster_targets(config) -> None:
    result = assign(config, request("请问会员积分怎么查询", tier=Tier.vip))
    assert result.queue == "vip"
    assert result.due.first_response - datetime(2026, 11, 24, 2, 0, tzinfo=UTC) == timedelta(minutes=15)


def test_normal_request_due_in_business_time(config) -> None:
    # received Tuesday 10:00; 2 working days of 9 h for an inquiry end Thursday 10:00
    result = assign(config, request("请问会员积分怎么查询"))
    assert result.due.resolution == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def test_receipt_tells_the_customer_when_in_local_time(config) -> None:
    req = request("请问会员积分怎么查询")
    assigned = assign(config, req)
    templates = load_yaml_model(CONFIG / "messages.yaml", Templates)
    msg = receipt(request=req, assigned=assigned, templates=templates)
    assert msg.to == {"wechat_openid": "oX"} and msg.channel is Channel.wechat
    assert "2026-11-24 10:30" in msg.text  # 02:00 UTC + 30 min, shown in Asia/Shanghai


def test_config_errors_name_file_line_and_field(tmp_path: Path) -> None:
    for name in ("departments.yaml", "sla.yaml", "messages.yaml", "routing.yaml"):
        (tmp_path / name).write_text((CONFIG / name).read_text())
    (tmp_path / "rules.yaml").write_text(
        "emergency: []\ntopics: []\ncategories:\n  - name: x\n    category: praise\n    phrases: [a]\n"
    )
    with pytest.raises(ConfigError) as info:
        RoutingConfig.load(tmp_path)
    assert "rules.yaml:5: categories.0.category" in str(info.value)


def test_unknown_department_in_responsibility_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "departments: [a]\nresponsibility: {t: {lead: b}}\ndefault_topic: {inquiry: t, suggestion: t, complaint: t, help: t}\n"
    )
    from services.routing.domain.rules import Departments

    with pytest.raises(ConfigError, match="unknown department"):
        load_yaml_model(tmp_path / "d.yaml", Departments)


def test_a_cross_field_mistake_names_the_line_it_is_on_not_the_top_of_the_file(tmp_path: Path) -> None:
    """The probe: an unknown department on line 6 was reported at line 2."""
    from services.routing.domain.rules import Departments

    (tmp_path / "d.yaml").write_text("# departments\ndepartments: [a, b]\n\nresponsibility:\n  t: {lead: a}\n"
                                     "  u: {lead: a, co: [b, c]}\n"
                                     "default_topic: {inquiry: t, suggestion: t, complaint: t, help: t}\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_model(tmp_path / "d.yaml", Departments)
    assert str(info.value).startswith(f"{tmp_path / 'd.yaml'}:6: responsibility.u.co.1: unknown department 'c'")


def test_kefu_config_check_lists_every_mistake_and_fails(tmp_path: Path, capsys) -> None:
    from shared.cli import main

    for source in CONFIG.glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text())
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing.read_text().replace("offer_timeout: 120s", "offer_timeout: 2 minutes"))
    feedback = tmp_path / "feedback.yaml"
    feedback.write_text(feedback.read_text().replace("expires_after: 28d", "expires_after: soon"))
    assert main(["config", "check", str(CONFIG)]) == 0
    assert main(["config", "check", str(tmp_path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"{routing}:2: offer_timeout:")
    assert errors[1].startswith(f"{feedback}:5: survey.expires_after:") and "soon" in errors[1]


def test_a_department_name_must_be_one_subject_token(tmp_path: Path) -> None:
    """A department names subjects (kefu.outbound.supervisor.<department>): a dot or a space in it
    would make another subject, which no publisher declares and no permission allows."""
    from services.routing.domain.rules import Departments

    (tmp_path / "d.yaml").write_text("departments: [a, after sales]\nresponsibility: {t: {lead: a}}\n"
                                     "default_topic: {inquiry: t, suggestion: t, complaint: t, help: t}\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_model(tmp_path / "d.yaml", Departments)
    assert "d.yaml:1: departments.1" in str(info.value)
