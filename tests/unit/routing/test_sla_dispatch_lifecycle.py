from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.routing.domain import lifecycle as lc
from services.routing.domain.dispatch import Agent, Waiting, choose_agent, plan, service_order, supervisor_for
from services.routing.domain.messages import Templates
from services.routing.domain.route import route_request
from services.routing.domain.rules import RoutingConfig
from services.routing.domain.sla import pause, resume
from shared.calendar import parse_duration
from shared.config import load_yaml_model
from shared.contract import subjects as s
from shared.contract.enums import Channel, Language, Priority, Tier
from shared.contract.models import CustomerRef, RequestReceived

CONFIG = Path(__file__).parents[3] / "config"
TUESDAY_10 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture(scope="module")
def config() -> RoutingConfig:
    return RoutingConfig.load(CONFIG)


def ctx(config: RoutingConfig, now: datetime = TUESDAY_10) -> lc.Context:
    return lc.Context(now=now, sla=config.sla, templates=load_yaml_model(CONFIG / "messages.yaml", Templates),
                      offer_timeout=timedelta(minutes=2), max_offers=2)


def new_record(config: RoutingConfig, text: str = "请问会员积分怎么查询", tier: Tier = Tier.standard,
               at: datetime = TUESDAY_10):
    request = RequestReceived(
        request_id="req_" + "b" * 26, channel=Channel.sms, source_id="SM1", received_at=at,
        customer=CustomerRef(customer_id="c-1", tier=tier, phone="+8613900001111", account_manager="am-1"),
        body=text, language=Language.zh)
    return route_request(request, rules=config, ctx=ctx(config, at))


# -- SLA ------------------------------------------------------------------------------------------
def test_durations() -> None:
    day = timedelta(hours=9)
    assert parse_duration("90s", day) == timedelta(seconds=90)
    assert parse_duration("2wd", day) == timedelta(hours=18)
    with pytest.raises(ValueError):
        parse_duration("soon", day)


def test_policy_selection_by_priority_tier_and_category(config) -> None:
    sla = config.sla
    assert sla.select(priority=Priority.urgent, tier=Tier.vip, category="help").name == "urgent"
    assert sla.select(priority=Priority.normal, tier=Tier.vip, category="inquiry").name == "vip"
    assert sla.select(priority=Priority.normal, tier=Tier.standard, category="suggestion").name == "suggestion"
    assert sla.select(priority=Priority.normal, tier=Tier.standard, category="complaint").name == "normal"


def test_pause_keeps_the_business_time_left(config) -> None:
    record = new_record(config)  # inquiry: first response 30 business minutes, due 10:30
    policy = config.sla.select(priority=Priority.normal, tier=Tier.standard, category="inquiry")
    paused = pause(record.sla, config=config.sla, policy=policy, at=TUESDAY_10 + timedelta(minutes=20))
    assert paused.deadlines["first_response"].remaining == timedelta(minutes=10)
    # resumed the next morning at 09:00 Shanghai: 10 minutes left
    next_morning = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    resumed = resume(paused, config=config.sla, policy=policy, at=next_morning)
    assert resumed.deadlines["first_response"].due == next_morning + timedelta(minutes=10)
    assert resumed.deadlines["first_response"].warn_at == next_morning + timedelta(minutes=2, seconds=30)
    assert resumed.paused_since is None


# -- dispatch -------------------------------------------------------------------------------------
def agent(agent_id: str, **kw) -> Agent:
    base = {"name": agent_id, "department": "business", "queues": ["business.normal"], "capacity": 2,
            "status": "available", "languages": ["zh"]}
    return Agent(agent_id=agent_id, **(base | kw))


def waiting(rid: str, **kw) -> Waiting:
    base = {"queue": "business.normal", "department": "business", "priority": "normal", "emergency": False,
            "received_at": TUESDAY_10, "language": "zh"}
    return Waiting(request_id=rid, **(base | kw))


def test_service_order_emergency_then_priority_then_oldest() -> None:
    old = waiting("r-old", received_at=TUESDAY_10 - timedelta(hours=1))
    new = waiting("r-new")
    important = waiting("r-imp", priority="important")
    emergency = waiting("r-emg", priority="urgent", emergency=True, received_at=TUESDAY_10 + timedelta(hours=1))
    assert [w.request_id for w in service_order([new, important, old, emergency])] == ["r-emg", "r-imp", "r-old", "r-new"]


def test_least_loaded_eligible_agent_wins() -> None:
    agents = {"a": agent("a", active=["x"]), "b": agent("b"), "c": agent("c", status="away")}
    assert choose_agent(waiting("r"), agents).agent_id == "b"


@pytest.mark.parametrize(
    "reason",
    [{"languages": ["en"]}, {"skills": []}, {"queues": ["quality.normal"]}, {"capacity": 0}, {"status": "offline"}],
)
def test_ineligible_agents(reason: dict) -> None:
    w = waiting("r", skills=["billing"])
    a = agent("a", skills=["billing"]) .model_copy(update=reason)
    assert choose_agent(w, {"a": a}) is None


def test_agent_who_let_an_offer_expire_is_not_offered_it_again() -> None:
    assert choose_agent(waiting("r", declined_by=["a"]), {"a": agent("a")}) is None


def test_vip_goes_to_the_account_manager_whatever_the_queue() -> None:
    w = waiting("r", queue="vip", tier="vip", account_manager="am")
    agents = {"am": agent("am", department="business", queues=["other"]), "b": agent("b", queues=["vip"])}
    assert choose_agent(w, agents).agent_id == "am"
    busy = {"am": agent("am", capacity=1, active=["x"]), "b": agent("b", queues=["vip"])}
    assert choose_agent(w, busy).agent_id == "b"  # manager full: the VIP queue


def test_plan_never_exceeds_capacity() -> None:
    offers = plan([waiting(f"r{i}") for i in range(10)], {"a": agent("a"), "b": agent("b", capacity=1)})
    assert len(offers) == 3
    assert sorted(a.agent_id for _, a in offers) == ["a", "a", "b"]


def test_supervisor_of_the_department() -> None:
    agents = {"s": agent("s", role="supervisor"), "t": agent("t", role="supervisor", department="hr")}
    assert supervisor_for("business", agents).agent_id == "s" and supervisor_for("quality", agents) is None


# -- lifecycle ------------------------------------------------------------------------------------
def subjects(record) -> list[str]:
    return [i.subject for i in record.outbox]


def test_new_record_publishes_decision_and_receipt(config) -> None:
    record = new_record(config)
    assert record.state == "queued" and subjects(record) == [s.REQUEST_ASSIGNED, "kefu.outbound.sms"]
    assert len({i.msg_id for i in record.outbox}) == 2


def test_emergency_is_escalated_at_once_with_a_supervisor_alert(config) -> None:
    record = new_record(config, "家里燃气泄漏了")
    assert s.REQUEST_ESCALATED in subjects(record)
    assert any(subj.startswith("kefu.outbound.supervisor.") for subj in subjects(record))
    escalated = next(i for i in record.outbox if i.subject == s.REQUEST_ESCALATED)
    assert escalated.payload["reason"] == "emergency"


def test_offer_fills_in_the_agent_of_the_unpublished_decision(config) -> None:
    record = lc.offer(new_record(config), ctx(config), agent_id="a1")
    assigned = next(i for i in record.outbox if i.subject == s.REQUEST_ASSIGNED)
    assert assigned.payload["agent_id"] == "a1" and record.state == "offered"
    assert lc.REQUEST_DISPATCHED in subjects(record)


def test_full_lifecycle_and_invalid_transitions(config) -> None:
    c = ctx(config)
    r = lc.accept(lc.offer(new_record(config), c, agent_id="a1"), c, agent_id="a1")
    assert r.state == "accepted" and r.sla.deadlines["first_response"].met_at == TUESDAY_10
    assert "next_response" in r.sla.deadlines
    r = lc.note(r, c, actor="a1", text="正在核实，请稍候", to_customer=True)
    assert "kefu.outbound.sms" in subjects(r)[-1:]
    r = lc.set_pending(r, c, actor="a1", reason="need the order number")
    assert r.state == "pending" and r.sla.paused_since == TUESDAY_10
    assert lc.timers_for(r, c) == {}  # paused: no SLA timers
    r = lc.resume_on_reply(r, c, reason="customer replied")
    assert r.state == "accepted"
    r = lc.resolve(r, c, actor="a1", resolution="积分已补发", first_contact=True)
    assert r.state == "resolved" and r.release == ["a1"]
    resolved = next(i for i in r.outbox if i.subject == s.REQUEST_RESOLVED)
    # what feedback reports back with: it keeps nothing of a request before it is resolved
    assert resolved.payload["customer"]["phone"] == "+8613900001111"
    assert (resolved.payload["summary"], resolved.payload["channel"]) == ("请问会员积分怎么查询", "sms")
    assert resolved.payload["misrouted"] is False
    with pytest.raises(lc.InvalidTransition, match="resolved"):
        lc.resolve(r, c, actor="a1", resolution="again", first_contact=False)
    r = lc.close(r, c, actor="a1", reason=None)
    with pytest.raises(lc.InvalidTransition):
        lc.accept(r, c, agent_id="a1")
    assert lc.timers_for(r, c) == {}
    actions = [h.action for h in r.history]
    assert actions == ["received", "assigned", "offered", "accepted", "note", "pending", "resumed", "resolved", "closed"]
    assert len({i.msg_id for i in r.outbox}) == len(r.outbox)


def test_offer_expiry_moves_on_then_escalates_to_the_supervisor(config) -> None:
    c = ctx(config)
    r = lc.offer(new_record(config), c, agent_id="a1")
    r = lc.offer_expired(r, c, agent_id="a1", offer_no=1, supervisor_id="sup")
    assert r.state == "queued" and r.declined_by == ["a1"] and "a1" in r.release
    r = lc.offer(r, c, agent_id="a2")
    assert "offer" in lc.timers_for(r, c)
    stale = lc.offer_expired(r, c, agent_id="a1", offer_no=1, supervisor_id="sup")
    assert stale is r
    r = lc.offer_expired(r, c, agent_id="a2", offer_no=2, supervisor_id="sup")
    assert r.escalation_level == 1 and r.state == "offered" and r.agent_id == "sup"
    assert "offer" not in lc.timers_for(r, c)  # the supervisor's offer does not time out


def test_transfer_to_department_requeues_and_releases(config) -> None:
    c = ctx(config)
    r = lc.accept(new_record(config), c, agent_id="a1")
    r = lc.transfer(r, c, actor="a1", reason="quality issue", department="quality", queue=None, agent_id=None)
    assert (r.state, r.department, r.queue, r.agent_id) == ("queued", "quality", "quality.normal", None)
    assert r.release == ["a1"]
    r = lc.resolve(lc.accept(r, c, agent_id="a2"), c, actor="a2", resolution="fixed", first_contact=False)
    resolved = next(i for i in r.outbox if i.subject == s.REQUEST_RESOLVED)
    assert resolved.payload["misrouted"] is True and resolved.payload["department"] == "quality"


def test_sla_timers_fire_once_and_stale_ones_do_nothing(config) -> None:
    record = new_record(config)
    d = record.sla.deadlines["first_response"]
    later = ctx(config, d.due)
    breached = lc.sla_timer(record, later, deadline="first_response", kind="breach", due=d.due)
    assert s.SLA_BREACHED in subjects(breached)
    assert lc.sla_timer(breached, later, deadline="first_response", kind="breach", due=d.due) is breached
    moved = lc.sla_timer(record, later, deadline="first_response", kind="breach", due=d.due + timedelta(minutes=1))
    assert moved is record


def test_resolution_breach_tells_the_customer_why_and_when(config) -> None:
    record = new_record(config)
    d = record.sla.deadlines["resolution"]
    breached = lc.sla_timer(record, ctx(config, d.due), deadline="resolution", kind="breach", due=d.due)
    notice = next(i for i in breached.outbox if i.payload.get("kind") == "notice")
    assert "需要更多时间" in notice.payload["text"] and notice.payload["to"] == {"phone": "+8613900001111"}


def test_route_request_opens_a_queued_record_with_decision_receipt_and_escalation(config) -> None:
    record = new_record(config, text="热水器冒烟了，有烧焦的味道")  # an emergency
    decision = record.assignment
    assert record.state == "queued" and decision.emergency and decision.priority is Priority.urgent
    assert (record.department, record.queue, record.priority) == (decision.department, decision.queue, decision.priority)
    assert [h.action for h in record.history] == ["received", "assigned", "escalated"]
    assert [i.subject for i in record.outbox] == [
        s.REQUEST_ASSIGNED, s.outbound_subject(Channel.sms), s.REQUEST_ESCALATED,
        lc.supervisor_subject(decision.department)]
    assert record.sla.policy == "urgent" and decision.due.first_response == TUESDAY_10 + timedelta(minutes=10)


def test_route_request_of_an_inquiry_is_not_escalated(config) -> None:
    record = new_record(config)
    assert not record.assignment.emergency and record.escalation_level == 0
    assert [i.subject for i in record.outbox] == [s.REQUEST_ASSIGNED, s.outbound_subject(Channel.sms)]


TRANSITIONS = {
    "offer": lambda r, c: lc.offer(r, c, agent_id="a1"),
    "accept": lambda r, c: lc.accept(r, c, agent_id="a1"),
    "note": lambda r, c: lc.note(r, c, actor="a1", text="进度", to_customer=True),
    "pending": lambda r, c: lc.set_pending(r, c, actor="a1", reason="等资料"),
    "transfer": lambda r, c: lc.transfer(r, c, actor="a1", reason="x", department="quality", queue=None, agent_id=None),
    "escalate": lambda r, c: lc.escalate(r, c, actor="a1", reason="x"),
    "resolve": lambda r, c: lc.resolve(r, c, actor="a1", resolution="ok", first_contact=True),
    "close": lambda r, c: lc.close(r, c, actor="a1", reason=None),
    "expire": lambda r, c: lc.offer_expired(r, c, agent_id="a1", offer_no=r.offers, supervisor_id="s1"),
}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(sorted(TRANSITIONS)), min_size=1, max_size=8))
def test_a_transition_never_changes_the_record_it_is_given(steps: list[str]) -> None:
    """The probe: `offer` wrote the agent into the outbox items it shared with its input."""
    config = RoutingConfig.load(Path(__file__).parents[3] / "config")
    c = ctx(config)
    record = new_record(config)
    for step in steps:
        before = record.model_dump_json()
        try:
            changed = TRANSITIONS[step](record, c)
        except lc.InvalidTransition:
            changed = record
        assert record.model_dump_json() == before, step
        record = changed


def test_every_timer_routing_schedules_is_read_back_as_its_model(config) -> None:
    """Timer bodies are typed: what timers_for schedules, as the timer stream carries it, is read
    back by routing's timer handler as the same OfferTimer or SlaTimer."""
    from pydantic import TypeAdapter
    from pydantic_core import to_json

    c = ctx(config)
    record = lc.offer(new_record(config), c, agent_id="a1")
    scheduled = [timer for _, timer in lc.timers_for(record, c).values()]
    assert {type(t).__name__ for t in scheduled} == {"OfferTimer", "SlaTimer"}
    read_back = TypeAdapter(lc.RoutingTimer)
    assert [read_back.validate_json(to_json(t)) for t in scheduled] == scheduled
    offer_timer = next(t for t in scheduled if isinstance(t, lc.OfferTimer))
    assert (offer_timer.request_id, offer_timer.agent_id, offer_timer.offer) == (record.request_id, "a1", 1)
    sla_timer = next(t for t in scheduled if isinstance(t, lc.SlaTimer))
    assert sla_timer.timer == f"{sla_timer.deadline}.{sla_timer.kind}" and sla_timer.request_id == record.request_id
