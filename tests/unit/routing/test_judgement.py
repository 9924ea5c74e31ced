"""The rule language (word classes, gaps, endings, negation), the explanation on every judgement,
agents' corrections as transitions, their export as masked labelled rows, and the evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.routing.domain import lifecycle as lc
from services.routing.domain.classify import judge
from services.routing.domain.corrections import labelled_rows, masked
from services.routing.domain.dryrun import Recorded
from services.routing.domain.evaluate import Labelled, score
from services.routing.domain.messages import Templates
from services.routing.domain.route import route_request
from services.routing.domain.rules import PhraseRule, RoutingConfig, RuleSet, normalise
from shared.config import ConfigError, load_yaml_model
from shared.contract import subjects as s
from shared.contract.enums import Category, Channel, Language, Priority, Tier
from shared.contract.models import CustomerRef, Hints, RequestCorrected, RequestReceived

CONFIG = Path(__file__).parents[3] / "config"
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai


@pytest.fixture(scope="module")
def config() -> RoutingConfig:
    return RoutingConfig.load(CONFIG)


def rule(*phrases: str, words: dict | None = None, negatable: bool = False, unless: tuple[str, ...] = ()) -> PhraseRule:
    r = PhraseRule(name="r", phrases=list(phrases), negatable=negatable, unless=list(unless))
    r.bind(words or {}, ["没有", "no", "not", "{neg}"] if words and "neg" in words else ["没有", "no", "not"],
           ["是不是", "not sure"])
    return r


# -- the rule language ------------------------------------------------------------------------------
def test_a_word_class_stands_for_each_of_its_phrases() -> None:
    r = rule("{gas}味", "smell ~ {gas_en}", words={"gas": ["燃气", "煤气", "瓦斯"], "gas_en": ["gas"]})
    assert r.matches("家里一股煤气味") and r.matches("瓦斯味很重")
    assert r.matches("i can smell the gas") and not r.matches("the smell of coffee. gas station")
    assert not r.matches("燃料味")


def test_a_gap_is_short_and_stops_at_the_end_of_a_sentence() -> None:
    r = rule("charged ~ twice")
    assert r.matches("you charged my card twice") and r.matches("charged twice")
    assert not r.matches("i was charged. then i paid twice")
    assert not r.matches("charged for a subscription i never wanted and then it happened twice")  # too far apart


def test_an_ending_star_and_whole_words() -> None:
    r = rule("frustrat*", "fire")
    assert r.matches("so frustrating") and r.matches("frustrated")
    assert not r.matches("the firewall") and not r.matches("he was fired")


def test_negation_in_the_same_clause_and_doubt_that_is_not_negation() -> None:
    r = rule("燃气味", "smell gas", negatable=True)
    assert not r.matches("我检查过了没有燃气味") and not r.matches("i do not smell gas")
    assert r.matches("没人管，燃气味很重")  # the negation is in another clause
    assert r.matches("不知道是不是有燃气味") and r.matches("not sure but i smell gas")
    assert rule("燃气味").matches("没有燃气味")  # only negatable rules


def test_unless_phrases_and_near_misses(config) -> None:
    assert not j(config, "请问你们有灭火器卖吗").emergency
    assert not j(config, "这个问题困扰我好久了，一直被困在登录页面").emergency
    assert not j(config, "燃气报警器一直响，但家里没有燃气味").emergency
    assert j(config, "燃气报警器一直响，厨房有很重的燃气味").emergency


def test_traditional_chinese_is_read_with_taiwans_words() -> None:
    assert normalise("網路斷線，收不到簡訊！") == "网络断线,收不到短信!"  # full-width punctuation folded too
    assert normalise("ＦＩＲＥ") == "fire"


def test_an_unknown_word_class_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    for name in ("departments.yaml", "sla.yaml", "messages.yaml", "routing.yaml"):
        (tmp_path / name).write_text((CONFIG / name).read_text())
    (tmp_path / "rules.yaml").write_text(
        "words: {a: [x]}\nemergency: []\ntopics: []\ncategories:\n"
        "  - name: x\n    category: help\n    phrases: [\"{b}\"]\n")
    with pytest.raises(ConfigError) as info:
        RoutingConfig.load(tmp_path)
    assert "rules.yaml:7: categories.0.phrases" in str(info.value) and "unknown word class {b}" in str(info.value)
    with pytest.raises(ValueError, match="refers to itself"):
        RuleSet(words={"a": ["{a}x"]}, emergency=[], topics=[],
                categories=[{"name": "x", "category": "help", "phrases": ["{a}"]}])


# -- every decision explains itself ----------------------------------------------------------------
def j(config: RoutingConfig, text: str, hints: Hints | None = None):
    return judge(text=text, hints=hints or Hints(), tier=Tier.standard, rules=config.rules)


def test_the_judgement_names_each_rule_and_the_words_it_found(config) -> None:
    result = j(config, "你们卖的热水器冒烟了，我要投诉")
    assert result.emergency and result.category is Category.complaint
    assert result.evidence["emergency:smoke"] == "冒烟"
    assert result.evidence["category:complaint_word"] == "投诉"
    assert set(result.matched_rules) == set(result.evidence)
    assert result.scores[Category.complaint] > result.scores.get(Category.help, 0)


def test_an_emergency_is_a_call_for_help_unless_it_complains(config) -> None:
    assert j(config, "电梯停在两层中间，我们被困在里面").category is Category.help
    assert j(config, "你们装的燃气管漏气了，我要投诉").category is Category.complaint


def test_the_decision_carries_the_explanation(config) -> None:
    record = new_record(config, "我已经第三次打电话了，宽带还是连不上，你们到底管不管")
    assigned = record.assignment
    assert assigned.evidence["important:repeated_contact"] == "第三次"
    assert assigned.scores and max(assigned.scores, key=assigned.scores.__getitem__) == assigned.category.value
    assert assigned.priority is Priority.important


# -- corrections -----------------------------------------------------------------------------------
def ctx(config: RoutingConfig, now: datetime = T0) -> lc.Context:
    return lc.Context(now=now, sla=config.sla, templates=load_yaml_model(CONFIG / "messages.yaml", Templates),
                      offer_timeout=timedelta(minutes=2), max_offers=2)


def new_record(config: RoutingConfig, text: str = "请问会员积分怎么查询", name: str | None = None):
    request = RequestReceived(
        request_id="req_" + "c" * 26, channel=Channel.sms, source_id="SM1", received_at=T0,
        customer=CustomerRef(customer_id="c-1", name=name, tier=Tier.standard, phone="+8613900001111"),
        body=text, language=Language.zh)
    return route_request(request, rules=config, ctx=ctx(config))


def corrected_events(record) -> list[dict]:
    return [i.payload for i in record.outbox if i.subject == s.REQUEST_CORRECTED]


def test_a_correction_changes_category_priority_and_queue_and_says_what_was_before(config) -> None:
    record = new_record(config)
    assert (record.assignment.category, record.priority, record.state) == (Category.inquiry, Priority.normal, "queued")
    department = record.department
    fixed = lc.correct(record, ctx(config), actor="a1", reason="积分被扣，是投诉", category=Category.complaint,
                       priority=Priority.important)
    assert (fixed.assignment.category, fixed.priority, fixed.queue) == (
        Category.complaint, Priority.important, f"{department}.important")
    assert fixed.sla == record.sla  # the clocks keep what the customer was told
    (event,) = corrected_events(fixed)
    assert event["changes"] == [{"field": "category", "old": "inquiry", "new": "complaint"},
                                {"field": "priority", "old": "normal", "new": "important"}]
    assert (event["actor"], event["reason"], event["department"]) == ("a1", "积分被扣，是投诉", department)
    assert fixed.history[-1].action == "corrected"
    with pytest.raises(lc.InvalidTransition, match="nothing to correct"):
        lc.correct(fixed, ctx(config), actor="a1", reason="again", category=Category.complaint, priority=None)
    closed = lc.close(fixed, ctx(config), actor="a1", reason=None)
    with pytest.raises(lc.InvalidTransition):
        lc.correct(closed, ctx(config), actor="a1", reason="late", category=Category.help, priority=None)


def test_a_transfer_to_another_department_is_a_correction_and_the_resolution_not_accurate(config) -> None:
    record = lc.accept(new_record(config), ctx(config), agent_id="a1")
    same = lc.transfer(record, ctx(config), actor="a1", reason="to the vip queue", department=None,
                       queue=record.queue, agent_id=None)
    assert corrected_events(same) == []
    moved = lc.transfer(record, ctx(config), actor="a1", reason="质量问题", department="quality", queue=None,
                        agent_id=None)
    (event,) = corrected_events(moved)
    assert event["changes"] == [{"field": "department", "old": record.department, "new": "quality"}]
    corrected_only = lc.correct(record, ctx(config), actor="a1", reason="x", category=Category.help, priority=None)
    resolved = lc.resolve(corrected_only, ctx(config), actor="a1", resolution="done", first_contact=True)
    payload = next(i.payload for i in resolved.outbox if i.subject == s.REQUEST_RESOLVED)
    assert payload["misrouted"] is True


def test_corrected_requests_become_masked_labelled_rows(config) -> None:
    text = "王小明 13800138000 zhang@example.cn 卡号 6222 0212 3456 7890 积分被多扣了，请问怎么回事"
    record = new_record(config, text, name="王小明")
    first = RequestCorrected(request_id=record.request_id, actor="a1", reason="王小明说被多扣", department="business",
                             queue="business.normal", occurred_at=T0 + timedelta(minutes=5),
                             changes=[{"field": "category", "old": "inquiry", "new": "help"}])
    second = RequestCorrected(request_id=record.request_id, actor="s1", reason="是投诉", department="business",
                              queue="business.important", occurred_at=T0 + timedelta(minutes=9),
                              changes=[{"field": "category", "old": "help", "new": "complaint"},
                                       {"field": "priority", "old": "normal", "new": "important"}])
    moved_only = Recorded(received=record.request.model_copy(update={"request_id": "req_" + "d" * 26}),
                          assigned=record.assignment, corrections=[RequestCorrected(
                              request_id="req_" + "d" * 26, actor="a1", reason="x", department="quality",
                              queue="quality.normal", occurred_at=T0,
                              changes=[{"field": "department", "old": "business", "new": "quality"}])])
    rows = labelled_rows([Recorded(received=record.request, assigned=record.assignment, corrections=[second, first]),
                          moved_only, Recorded(received=record.request)])
    assert len(rows) == 1
    row = rows[0]
    assert (row["category"], row["priority"], row["source"]) == ("complaint", "important", "correction")
    assert row["corrected"] == {"category": {"judged": "inquiry", "label": "complaint"},
                                "priority": {"judged": "normal", "label": "important"}}
    for secret in ("王小明", "13800138000", "zhang@example.cn", "6222", "7890"):
        assert secret not in row["text"] and all(secret not in reason for reason in row["reasons"])
    assert "积分被多扣了" in row["text"] and Labelled.model_validate(row).category is Category.complaint
    assert masked("订单号 20261124 已发货") == "订单号 <number> 已发货"


def test_evaluation_counts_what_it_says(config) -> None:
    rows = [Labelled(id="1", text="家里燃气泄漏了", category="help", priority="urgent", emergency=True, language="zh"),
            Labelled(id="2", text="请问营业厅几点开门", category="inquiry", priority="normal", emergency=False,
                     language="zh"),
            Labelled(id="3", text="请问营业厅几点开门", category="complaint", priority="important", emergency=True,
                     language="en", near_miss=False)]
    result = score(rows, config.rules)
    assert (result.rows, result.emergencies) == (3, 2)
    assert result.category_accuracy == pytest.approx(2 / 3) and result.priority_accuracy == pytest.approx(2 / 3)
    assert result.emergency_recall == 0.5 and result.emergency_precision == 1.0
    assert result.confusion == {"complaint->inquiry": 1}
    assert result.category_accuracy_by == {"language:en": 0.0, "language:zh": 1.0}
    assert {(m.id, m.field) for m in result.misses} == {("3", "category"), ("3", "priority"), ("3", "emergency")}
