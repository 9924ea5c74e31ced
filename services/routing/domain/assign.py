"""Routing (分流): lead and co-handling departments, queue, and due times for a judged request."""

from __future__ import annotations

from datetime import datetime

from shared.contract.enums import Tier
from shared.contract.models import Due, RequestAssigned, RequestReceived

from .classify import Judgement
from .rules import Departments
from .sla import SlaState


def departments_for(judgement: Judgement, table: Departments) -> tuple[str, str, list[str]]:
    """(topic, lead, co-handling) from the responsibility table.

    The first topic found leads; every other topic found adds its departments as co-handlers
    (a faulty product that a rude engineer failed to repair involves quality, production,
    after-sales, customer service and HR). No topic: the category's default topic.
    """
    topics = judgement.topics or [table.default_topic[judgement.category]]
    lead_topic = topics[0]
    lead = table.responsibility[lead_topic].lead
    co: list[str] = []
    for topic in topics:
        r = table.responsibility[topic]
        for dept in [r.lead, *r.co]:
            if dept != lead and dept not in co:
                co.append(dept)
    if judgement.emergency:
        co += [d for d in table.emergency_co if d != lead and d not in co]
    return lead_topic, lead, co


def queue_for(*, department: str, judgement: Judgement, tier: Tier, table: Departments) -> str:
    """`<department>.<priority>`; VIP customers' requests go to the VIP queue (account managers)."""
    if tier is Tier.vip and not judgement.emergency:
        return table.vip_queue
    return f"{department}.{judgement.priority.value}"


def assignment(
    *, request: RequestReceived, judgement: Judgement, table: Departments, sla: SlaState, now: datetime
) -> RequestAssigned:
    tier = request.customer.tier
    topic, lead, co = departments_for(judgement, table)
    return RequestAssigned(
        request_id=request.request_id,
        occurred_at=now,
        channel=request.channel,
        category=judgement.category,
        priority=judgement.priority,
        tier=tier,
        emergency=judgement.emergency,
        complex=judgement.complex,
        department=lead,
        co_departments=co,
        queue=queue_for(department=lead, judgement=judgement, tier=tier, table=table),
        agent_id=None,
        due=Due(first_response=sla.deadlines["first_response"].due, resolution=sla.deadlines["resolution"].due),
        topic=topic,
        matched_rules=judgement.matched_rules,
        evidence=judgement.evidence,
        scores={c.value: v for c, v in judgement.scores.items()},
    )
