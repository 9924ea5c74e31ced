"""NATS edge of intake: the durable consumer of KEFU_INTAKE."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsRouter

from shared.contract import conversation as cv
from shared.contract import models as m
from shared.contract import subjects as s
from shared.contract.models import Event
from shared.nats.consume import durable_subscriber
from shared.nats.publish import Publishes, audit_of
from shared.runtime import Late, Runtime

from .domain.contacts import mask_id_numbers
from .service import ADMITTED, Intake

# What intake publishes to kefu's contract streams (its AsyncAPI publish side). Raw payloads go to
# KEFU_INTAKE and KEFU_REJECTED, which are not read as the contract.
PUBLISHES = [
    Publishes(s.REQUEST_RECEIVED, m.RequestReceived, "A customer's request in canonical form."),
    Publishes(s.REQUEST_REJECTED, m.RequestRejected, "A payload that could not be understood; its raw bytes are kept."),
    Publishes(s.SURVEY_REPLIED, m.SurveyReplied, "A customer's answer as given, before it is recorded (kefu extension)."),
    Publishes(s.REQUEST_MESSAGE, cv.RequestMessage, "A customer's follow-up, appended to their request."),
    Publishes(s.MESSAGE_IGNORED, cv.MessageIgnored, "Auto-generated mail, kept and never answered."),
    Publishes(s.OUTBOUND_FAILED, cv.OutboundFailed, "A bounce of a message kefu sent."),
    audit_of("customer.read", "a customer (intake)"),
    audit_of("rejected.read", "a rejected payload's raw bytes (intake)"),
]


def build_router(runtime: Runtime, intake: Late[Intake], *, batch_size: int, workers: int = 1) -> NatsRouter:
    """`intake` is set at start-up, once the store is open."""
    router = NatsRouter()

    @durable_subscriber(router, runtime.consuming, subject=s.INTAKE_ALL, stream=s.STREAM_INTAKE,
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

    @durable_subscriber(router, runtime.consuming, subject=[s.REQUEST_CLOSED, s.REQUEST_REOPENED, s.REQUEST_REPLIED],
                        stream=s.STREAM_EVENTS, durable=s.CONSUMER_INTAKE_THREADS, batch_size=batch_size,
                        description="Keeps each sender's conversations current: a closed request takes no "
                        "follow-up, a reopened one does again, an agent's reply is activity in the window.")
    async def on_thread_event(event: dict[str, Any]) -> None:
        subject = runtime.current_message().subject
        parsed = Event.model_validate(event)
        request_id, conversation = event.get("request_id"), event.get("conversation")
        if isinstance(request_id, str):
            await intake().on_thread_event(subject, request_id, conversation if isinstance(conversation, str) else None,
                                           parsed.occurred_at)

    return router
