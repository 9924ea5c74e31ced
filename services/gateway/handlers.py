"""NATS edge of the gateway: kefu's messages for WeChat and SMS customers, each channel through
the durable its adapter would use (`adapter-<channel>`): the gateway is that channel's adapter."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsRouter

from shared.contract import subjects as s
from shared.contract.conversation import OutboundDelivered, OutboundFailed
from shared.contract.enums import Channel
from shared.contract.models import OutboundMessage
from shared.nats.consume import durable_subscriber
from shared.nats.publish import Publishes
from shared.runtime import Late, Runtime

from .service import Gateway

# What the gateway publishes to kefu's contract streams (the raw pushes go to KEFU_INTAKE as an
# adapter's do, on kefu.intake.<channel>)
PUBLISHES = [
    Publishes(s.OUTBOUND_FAILED, OutboundFailed, "A message kefu sent did not arrive: refused by the platform "
              "(WeChat outside its 48-hour window ...) or reported undelivered (SMS status)."),
    Publishes(s.OUTBOUND_DELIVERED, OutboundDelivered, "A platform confirmed delivery (SMS status `delivered`)."),
]


def build_router(runtime: Runtime, gateway: Late[Gateway], *, platforms: set[str], batch_size: int) -> NatsRouter:
    router = NatsRouter()

    def durable(channel: Channel, description: str) -> Any:
        return durable_subscriber(router, runtime.consuming, subject=s.outbound_subject(channel), stream=s.STREAM_OUTBOUND,
                                  durable=f"adapter-{channel.value}", batch_size=batch_size, description=description)

    if "wechat" in platforms:
        @durable(Channel.wechat, "Messages to WeChat customers, sent with the customer-service message API.")
        async def on_wechat(msg: OutboundMessage) -> None:
            await gateway().deliver_wechat(msg)

    if "mail" in platforms:
        @durable(Channel.email, "Messages to e-mail customers, sent through the site's SMTP relay in their thread.")
        async def on_email(msg: OutboundMessage) -> None:
            await gateway().deliver_email(msg)

    if "sms" in platforms:
        @durable(Channel.sms, "Messages to SMS customers, sent through the Twilio-compatible Messages API.")
        async def on_sms(msg: OutboundMessage) -> None:
            await gateway().deliver_sms(msg)

    return router
