"""Routing's one path for a received request: judge -> route -> persist -> publish."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter

from shared import subjects as s
from shared.bus import Publisher
from shared.enums import Category, Priority
from shared.models import RequestAssigned, RequestReceived

from .domain.assign import assignment
from .domain.classify import judge
from .domain.messages import Templates, receipt
from .domain.record import RequestRecord
from .domain.rules import RoutingConfig
from .store import RequestStore

log = logging.getLogger("kefu.routing")


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry, departments: list[str]) -> None:
        self.routed = Counter(
            "kefu_routing_decisions_total",
            "Requests routing judged and routed in this process, by category, priority and lead department.",
            ["category", "priority", "department"],
            registry=registry,
        )
        self.emergencies = Counter(
            "kefu_routing_emergencies_total", "Emergencies detected in this process.", registry=registry
        )
        for c in Category:
            for p in Priority:
                for d in departments:
                    self.routed.labels(c.value, p.value, d)


@dataclass
class Routing:
    config: RoutingConfig
    templates: Templates
    store: RequestStore
    publisher: Publisher
    metrics: RoutingMetrics

    async def on_received(self, request: RequestReceived) -> RequestAssigned:
        now = datetime.now(UTC)
        existing = await self.store.get(request.request_id)
        if existing is not None:
            record = existing[0]  # a redelivery: publish what was decided before, never decide twice
        else:
            judgement = judge(
                text=f"{request.subject or ''}\n{request.body}",
                hints=request.hints,
                tier=request.customer.tier,
                rules=self.config.rules,
            )
            decided = assignment(
                request=request,
                judgement=judgement,
                table=self.config.departments,
                sla=self.config.sla,
                now=now,
            )
            record = await self.store.create(RequestRecord.new(request=request, assignment=decided, now=now))
            if record.assignment.event_id == decided.event_id:
                a = record.assignment
                self.metrics.routed.labels(a.category.value, a.priority.value, a.department).inc()
                if a.emergency:
                    self.metrics.emergencies.inc()
        assigned = record.assignment
        await self.publisher.model(s.REQUEST_ASSIGNED, assigned, msg_id=f"assigned:{request.request_id}")
        await self.publisher.model(
            s.outbound_subject(request.channel),
            receipt(request=request, assigned=assigned, templates=self.templates),
            msg_id=f"receipt:{request.request_id}",
            stream=s.STREAM_OUTBOUND,
        )
        log.info(
            "request assigned",
            extra={
                "request_id": request.request_id,
                "department": assigned.department,
                "priority": assigned.priority.value,
                "emergency": assigned.emergency,
            },
        )
        return assigned
