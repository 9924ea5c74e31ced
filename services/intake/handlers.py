"""NATS edge of intake: the durable consumer of KEFU_INTAKE."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsMessage, NatsRouter, PullSub

from shared import subjects as s
from shared.bus import inbox_prefix
from shared.runtime import Runtime

from .pipeline import Intake


def build_router(runtime: Runtime, intake: dict[str, Intake], *, batch_size: int) -> NatsRouter:
    """`intake["intake"]` is filled in at start-up, once the store is open."""
    router = NatsRouter()
    settings = runtime.settings

    @router.subscriber(
        s.INTAKE_ALL,
        stream=JStream(s.STREAM_INTAKE, declare=False),
        durable=s.CONSUMER_INTAKE,
        pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
        config=ConsumerConfig(
            ack_wait=settings.ack_wait_seconds,
            max_deliver=settings.max_deliver,
            max_ack_pending=1000,
        ),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        inbox_prefix=inbox_prefix(settings),
        title="intake",
        description="Every payload an adapter published, in its channel's own format.",
    )
    async def on_payload(msg: NatsMessage) -> None:
        raw = msg.raw_message
        await intake["intake"].handle(
            channel_name=s.channel_of_intake_subject(raw.subject),
            raw=msg.body,
            stored_at=raw.metadata.timestamp,
            via="http" if (raw.headers or {}).get("Kefu-Via") == "http" else "nats",
        )

    return router
