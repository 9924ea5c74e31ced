"""What the console's live stream shows, and to whom (services/console/domain/live.py): the same
rule as GET /v1/requests/{id}, applied to each event."""

from __future__ import annotations

import json

from services.console.domain.live import Access, access_of, may_see, notice
from shared.contract import subjects as s
from shared.http.auth import Principal

AGENT = Principal(subject="a1", role="agent", departments=frozenset({"business"}))
OTHER = Principal(subject="q1", role="agent", departments=frozenset({"quality"}))
SUPERVISOR = Principal(subject="sup", role="supervisor", departments=frozenset({"quality"}))
ADMIN = Principal(subject="admin", role="admin")


def test_a_notice_names_the_request_and_what_happened_never_what_was_written() -> None:
    n = notice(s.REQUEST_MESSAGE, {"request_id": "req_x", "occurred_at": "2026-12-05T08:00:00+08:00",
                                   "text": "我的手机号 13800138000", "channel": "sms", "customer": {"name": "王"}})
    assert n is not None and n.kind == "customer_wrote" and n.request_id == "req_x"
    assert "13800138000" not in n.model_dump_json() and "王" not in n.model_dump_json()
    sla = notice(s.SLA_BREACHED, {"request_id": "req_x", "sla": "resolution", "due": "x", "priority": "urgent"})
    assert sla is not None and (sla.kind, sla.sla, sla.priority) == ("sla_breached", "resolution", "urgent")
    assert notice(s.REQUEST_ASSIGNED, {"request_id": "req_x", "emergency": True}).emergency is True


def test_events_pages_do_not_show_and_events_without_a_request_give_no_notice() -> None:
    assert notice(s.SURVEY_SENT, {"request_id": "req_x", "url": "https://secret"}) is None
    assert notice(s.REQUEST_RECEIVED, {"request_id": "req_x"}) is None  # assigned follows with its judgement
    assert notice(s.REQUEST_ASSIGNED, {"request_id": 7}) is None
    assert notice("kefu.events.request.unknown", {"request_id": "req_x"}) is None


def test_shown_to_whoever_may_read_the_request_now() -> None:
    business = Access(department="business", co_departments=["quality"], agent_id=None)
    held_by_a1 = Access(department="quality", agent_id="a1")
    n = notice(s.REQUEST_ACCEPTED, {"request_id": "req_x"})
    assert n is not None
    assert may_see(AGENT, business, n) and may_see(OTHER, business, n)  # lead and co-handling departments
    assert may_see(AGENT, held_by_a1, n) and may_see(SUPERVISOR, held_by_a1, n)
    assert not may_see(AGENT, Access(department="hr"), n) and not may_see(SUPERVISOR, Access(department="hr"), n)
    assert may_see(ADMIN, None, n) and not may_see(AGENT, None, n)  # no record: admins only


def test_an_offer_reaches_its_agent_even_once_the_record_moved_on() -> None:
    offered = notice(s.REQUEST_DISPATCHED, {"request_id": "req_x", "agent_id": "a1"})
    assert offered is not None
    moved = Access(department="quality", agent_id="q9")  # transferred since: read back from the log later
    assert may_see(AGENT, moved, offered) and not may_see(OTHER.model_copy(update={"departments": frozenset()}), moved,
                                                           offered)


def test_access_is_read_from_routings_record() -> None:
    record = json.dumps({"department": "business", "agent_id": "a1", "assignment": {"co_departments": ["hr"]},
                         "request": {"body": "ignored"}}).encode()
    assert access_of(record) == Access(department="business", co_departments=["hr"], agent_id="a1")
