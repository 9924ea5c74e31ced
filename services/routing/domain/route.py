"""A received request routed: judged, its SLA policy chosen and clocks started, its lead and
co-handling departments assigned, and its record opened — one pure function over the rule set."""

from __future__ import annotations

from shared.contract.models import RequestReceived

from .assign import assignment
from .classify import judge
from .dispatch import needs_for
from .lifecycle import Context, open_record
from .record import RequestRecord
from .rules import RoutingConfig
from .sla import start_sla


def route_request(request: RequestReceived, *, rules: RoutingConfig, ctx: Context) -> RequestRecord:
    """The record a newly received request starts with (queued; its decision, receipt and any
    escalation in the outbox)."""
    judgement = judge(text=f"{request.subject or ''}\n{request.body}", hints=request.hints,
                      tier=request.customer.tier, rules=rules.rules)
    policy = rules.sla.select(priority=judgement.priority, tier=request.customer.tier,
                              category=judgement.category)
    sla = start_sla(config=rules.sla, policy=policy, received_at=request.received_at)
    decision = assignment(request=request, judgement=judgement, table=rules.departments, sla=sla, now=ctx.now)
    return open_record(request=request, decision=decision, sla=sla, ctx=ctx,
                       skills=needs_for(topic=decision.topic, skills_by_topic=rules.tuning.skills_by_topic))
