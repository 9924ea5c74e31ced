"""NATS edge of routing: received requests and fired timers, each a durable consumer."""

from __future__ import annotations

from typing import Any

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsRouter, PullSub

from shared import subjects as s
from shared.models import RequestReceived, RequestReopened
from shared.bus import inbox_prefix
from shared.runtime import Runtime
from shared.timers import fire_filter

from .service import TIMER_SERVICE, Routing


def build_router(runtime: Runtime, routing: dict[str, Routing], *, batch_size: int) -> NatsRouter:
    router = NatsRouter()
    settings = runtime.settings
    consumer = ConsumerConfig(ack_wait=settings.ack_wait_seconds, max_deliver=settings.max_deliver,
                              max_ack_pending=1000)

    @router.subscriber(
        s.REQUEST_RECEIVED,
        stream=JStream(s.STREAM_EVENTS, declare=False),
        durable=s.CONSUMER_ROUTING,
        pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
        config=consumer,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        inbox_prefix=inbox_prefix(settings),
        title="routing",
        description="Judges, routes and sets SLA deadlines for every received request; offers it to an agent.",
    )
    async def on_received(request: RequestReceived) -> None:
        await routing["routing"].on_received(request)

    @router.subscriber(
        fire_filter(TIMER_SERVICE),
        stream=JStream(s.STREAM_TIMERS, declare=False),
        durable=s.CONSUMER_ROUTING_TIMERS,
        pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
        config=consumer,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        inbox_prefix=inbox_prefix(settings),
        title="routing-timers",
        description="SLA warnings and breaches, and offers not accepted in time (server-side schedules).",
    )
    async def on_timer(body: dict[str, Any]) -> None:
        await routing["routing"].on_timer(body)

    @router.subscriber(
        s.REQUEST_REOPENED,
        stream=JStream(s.STREAM_EVENTS, declare=False),
        durable=s.CONSUMER_ROUTING_REOPENED,
        pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
        config=consumer,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        inbox_prefix=inbox_prefix(settings),
        title="routing-reopened",
        description="Requests reopened by feedback go back to their department's queue.",
    )
    async def on_reopened(event: RequestReopened) -> None:
        await routing["routing"].on_reopened(event)

    return router
