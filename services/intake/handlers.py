"""NATS edge of intake: the durable consumer of KEFU_INTAKE."""

from __future__ import annotations

from faststream.nats import NatsRouter

from shared.contract import subjects as s
from shared.nats.consume import durable_subscriber
from shared.runtime import Late, Runtime

from .domain.contacts import mask_id_numbers
from .service import ADMITTED, Intake


def build_router(runtime: Runtime, intake: Late[Intake], *, batch_size: int, workers: int = 1) -> NatsRouter:
    """`intake` is set at start-up, once the store is open."""
    router = NatsRouter()

    @durable_subscriber(router, runtime.settings, subject=s.INTAKE_ALL, stream=s.STREAM_INTAKE,
                        durable=s.CONSUMER_INTAKE, batch_size=batch_size, workers=workers,
                        description="Every payload an adapter published, in its channel's own format.")
    async def on_payload(body: bytes) -> None:
        raw = runtime.current_message()
        headers = raw.headers or {}
        if ADMITTED in headers:
            return  # admitted when it was stored (the HTTP edge, or a masked copy): nothing to do twice
        # identity numbers are masked before anything is made of the payload; the adapter's
        # original, stored in clear, is then replaced by the masked copy
        masked = mask_id_numbers(body)
        await intake().admit(
            channel_name=s.channel_of_intake_subject(raw.subject),
            raw=masked,
            stored_at=raw.metadata.timestamp,
            via="http" if headers.get("Kefu-Via") == "http" else "nats",
        )
        if masked != body:
            await intake().replace_stored(subject=raw.subject, masked=masked, seq=raw.metadata.sequence.stream,
                                          headers=headers)

    return router
