"""NATS edge of intake: the durable consumer of KEFU_INTAKE."""

from __future__ import annotations

from faststream.nats import NatsRouter

from shared import subjects as s
from shared.runtime import Late, Runtime, durable_subscriber

from .service import Intake


def build_router(runtime: Runtime, intake: Late[Intake], *, batch_size: int, workers: int = 1) -> NatsRouter:
    """`intake` is set at start-up, once the store is open."""
    router = NatsRouter()

    @durable_subscriber(router, runtime.settings, subject=s.INTAKE_ALL, stream=s.STREAM_INTAKE,
                        durable=s.CONSUMER_INTAKE, batch_size=batch_size, workers=workers,
                        description="Every payload an adapter published, in its channel's own format.")
    async def on_payload(body: bytes) -> None:
        raw = runtime.current_message()
        if await intake().mask_stored(subject=raw.subject, raw=body, seq=raw.metadata.sequence.stream,
                                              headers=raw.headers or {}):
            return  # the masked copy is the payload now, and comes next
        await intake().handle(
            channel_name=s.channel_of_intake_subject(raw.subject),
            raw=body,
            stored_at=raw.metadata.timestamp,
            via="http" if (raw.headers or {}).get("Kefu-Via") == "http" else "nats",
        )

    return router
