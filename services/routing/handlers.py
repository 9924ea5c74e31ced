"""NATS edge of routing: the durable consumer of `request.received`."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsRouter, PullSub

from shared import subjects as s
from shared.models import RequestReceived
from shared.runtime import Runtime

from .service import Routing


def build_router(runtime: Runtime, routing: dict[str, Routing], *, batch_size: int) -> NatsRouter:
    router = NatsRouter()
    settings = runtime.settings

    @router.subscriber(
        s.REQUEST_RECEIVED,
        stream=JStream(s.STREAM_EVENTS, declare=False),
        durable=s.CONSUMER_ROUTING,
        pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
        config=ConsumerConfig(
            ack_wait=settings.ack_wait_seconds,
            max_deliver=settings.max_deliver,
            max_ack_pending=1000,
        ),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="routing",
        description="Judges, routes and sets due times for every received request.",
    )
    async def on_received(request: RequestReceived) -> None:
        await routing["routing"].on_received(request)

    return router
