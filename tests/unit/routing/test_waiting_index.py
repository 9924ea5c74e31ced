"""Dispatch looks at the requests the agents with room could take, and decides exactly what it
would decide over the whole backlog (hypothesis), at a cost that follows the served queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.routing.domain.dispatch import Agent, Waiting, WaitingIndex, plan
from shared.contract.enums import Language, Priority, Tier

T0 = datetime(2026, 12, 1, tzinfo=UTC)
QUEUES = ["business.normal", "business.urgent", "quality.normal", "vip"]

waitings = st.builds(
    lambda i, queue, priority, emergency, minutes, lang, vip, manager, declined: Waiting(
        request_id=f"req_{i:04d}", queue=queue, department=queue.split(".")[0] if "." in queue else "business",
        priority=priority, emergency=emergency, received_at=T0 + timedelta(minutes=minutes), language=lang,
        tier=Tier.vip if vip else Tier.standard, account_manager=manager if vip else None, declined_by=declined),
    st.integers(0, 9999), st.sampled_from(QUEUES), st.sampled_from(list(Priority)), st.booleans(),
    st.integers(0, 600), st.sampled_from([Language.zh, Language.en]), st.booleans(),
    st.sampled_from(["a1", "a2", "m9"]), st.lists(st.sampled_from(["a1", "a2", "a3"]), max_size=2))
agents = st.builds(
    lambda n, dept, queues, capacity, load, status, langs: Agent(
        agent_id=n, name=n, department=dept, queues=queues, capacity=capacity,
        active=[f"held-{n}-{i}" for i in range(load)], status=status, languages=langs),
    st.sampled_from(["a1", "a2", "a3", "m9"]), st.sampled_from(["business", "quality"]),
    st.lists(st.sampled_from(QUEUES), max_size=2, unique=True), st.integers(0, 3), st.integers(0, 3),
    st.sampled_from(["available", "away", "offline"]), st.lists(st.sampled_from([Language.zh, Language.en]),
                                                                min_size=1, max_size=2, unique=True))


@settings(max_examples=300, deadline=None)
@given(st.lists(waitings, max_size=40, unique_by=lambda w: w.request_id),
       st.lists(agents, max_size=4, unique_by=lambda a: a.agent_id))
def test_planning_over_the_candidates_decides_what_planning_over_everything_decides(backlog, team) -> None:
    index = WaitingIndex()
    for w in backlog:
        index.put(w)
    by_id = {a.agent_id: a for a in team}
    with_room = [a for a in team if a.has_room]
    expected = [(w.request_id, a.agent_id) for w, a in plan(backlog, by_id)]
    assert [(w.request_id, a.agent_id) for w, a in plan(index.candidates(with_room), by_id)] == expected


def test_a_backlog_in_a_queue_nobody_free_serves_is_not_looked_at() -> None:
    index = WaitingIndex()
    for i in range(10_000):
        index.put(Waiting(request_id=f"req_q{i}", queue="quality.normal", department="quality",
                          priority=Priority.normal, emergency=False, received_at=T0, language=Language.zh))
    index.put(Waiting(request_id="req_b1", queue="business.normal", department="business", priority=Priority.normal,
                      emergency=False, received_at=T0, language=Language.zh))
    free = Agent(agent_id="a1", name="a1", department="business", queues=["business.normal"], status="available")
    assert [w.request_id for w in index.candidates([free])] == ["req_b1"]
    index.remove("req_b1")
    index.remove("req_b1")  # twice: harmless
    assert index.candidates([free]) == [] and len(index) == 10_000


@settings(max_examples=100, deadline=None)
@given(st.lists(waitings, max_size=40, unique_by=lambda w: w.request_id))
def test_a_departments_waiting_requests_are_those_of_the_backlog_with_that_department(backlog) -> None:
    index = WaitingIndex()
    for w in backlog:
        index.put(w)
    for department in ("business", "quality", "hr"):
        assert sorted(w.request_id for w in index.in_department(department)) == sorted(
            w.request_id for w in backlog if w.department == department)
