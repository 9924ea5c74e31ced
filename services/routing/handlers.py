"""NATS edge of routing: received requests, reopened requests and fired timers, each a durable consumer."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsRouter

from shared.contract import subjects as s
from shared.contract.models import RequestReceived, RequestReopened
from shared.nats.consume import durable_subscriber
from shared.nats.timers import fire_filter
from shared.runtime import Late, Runtime

from .domain.lifecycle import timer_of
from .service import TIMER_SERVICE, Routing


def build_router(runtime: Runtime, routing: Late[Routing], *, batch_size: int, workers: int = 1) -> NatsRouter:
    router = NatsRouter()
    settings = runtime.settings

    @durable_subscriber(router, settings, subject=s.REQUEST_RECEIVED, stream=s.STREAM_EVENTS,
                        durable=s.CONSUMER_ROUTING, batch_size=batch_size, workers=workers,
                        description="Judges, routes and sets SLA deadlines for every received request; "
                        "offers it to an agent.")
    async def on_received(request: RequestReceived) -> None:
        await routing().on_received(request)

    @durable_subscriber(router, settings, subject=fire_filter(TIMER_SERVICE), stream=s.timers_stream(TIMER_SERVICE),
                        durable=s.CONSUMER_ROUTING_TIMERS, batch_size=batch_size,
                        description="SLA warnings and breaches, and offers not accepted in time "
                        "(server-side schedules).")
    async def on_timer(body: dict[str, Any]) -> None:
        await routing().on_timer(timer_of(body))

    @durable_subscriber(router, settings, subject=s.REQUEST_REOPENED, stream=s.STREAM_EVENTS,
                        durable=s.CONSUMER_ROUTING_REOPENED, batch_size=batch_size,
                        description="Requests reopened by feedback go back to their department's queue.")
    async def on_reopened(event: RequestReopened) -> None:
        await routing().on_reopened(event)

    return router
