"""The gateway's work between its edges: a platform's push stored in KEFU_INTAKE before it is
answered, kefu's messages sent through the platforms' APIs, and what became of them published."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter

from shared.contract import subjects as s
from shared.contract.conversation import OutboundDelivered, OutboundFailed
from shared.contract.enums import Channel
from shared.contract.models import OutboundMessage
from shared.nats import attachments
from shared.nats.publish import Publisher

from .clients import Sent, SmsApi, WeChatApi
from .mail import SmtpSender

log = logging.getLogger("kefu.gateway")


MAIL_IN_NATS = 500 * 1024  # what intake keeps of a mail (KEFU_INTAKE_MAX_PAYLOAD_BYTES' default)


class MailTooLarge(ValueError):
    """A mail whose text alone is beyond what a NATS message holds (SMTP answers 552)."""


class PlatformBusy(Exception):
    """The platform could not take the message now: redelivered with backoff, then dead-lettered."""


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pushes = Counter("kefu_gateway_pushes_total", "Platform pushes the gateway answered, by outcome "
                              "(stored, duplicate, or the refusal's reason).", ["platform", "outcome"], registry=registry)
        self.sent = Counter("kefu_gateway_messages_sent_total", "Messages to customers handed to a platform, by "
                            "outcome (sent, refused, retry).", ["platform", "outcome"], registry=registry)
        for platform in ("wechat", "sms", "mail"):
            for outcome in ("stored", "duplicate"):
                self.pushes.labels(platform, outcome)
            for outcome in ("sent", "refused", "retry"):
                self.sent.labels(platform, outcome)


@dataclass
class Gateway:
    publisher: Publisher
    metrics: GatewayMetrics
    js: JetStreamContext | None = None  # large mail's attachments go to the object store through it
    wechat: WeChatApi | None = None
    sms: SmsApi | None = None
    mail: SmtpSender | None = None
    sms_public_url: str = ""

    async def store_push(self, platform: Channel, payload: bytes, key: str) -> None:
        """The push in KEFU_INTAKE (acknowledged by JetStream) before the platform hears back:
        a retry of the same push (same key) is dropped by the stream's duplicate window, and
        intake makes one request of it in any case."""
        ack = await self.publisher.raw(s.intake_subject(platform), payload, msg_id=f"{platform.value}.{key}")
        label = "mail" if platform is Channel.email else platform.value
        self.metrics.pushes.labels(label, "duplicate" if ack.duplicate else "stored").inc()

    async def store_mail(self, raw: bytes, key: str) -> None:
        """A mail from the mailbox or the SMTP server: its large attachments to kefu_attachments
        first when it is too large for a NATS message, then stored like any push."""
        if self.js is not None:
            raw = await attachments.fit(self.js, raw, limit=MAIL_IN_NATS)
        if len(raw) > MAIL_IN_NATS:
            raise MailTooLarge(f"{len(raw)} bytes even without its attachments")
        await self.store_push(Channel.email, raw, key)

    async def deliver_wechat(self, msg: OutboundMessage) -> None:
        openid = msg.to.get("wechat_openid")
        if self.wechat is None or not openid:
            await self.failed(msg, "no_address", "no WeChat openid to send to")
            return
        await self.settle(msg, "wechat", await self.wechat.send_text(openid, msg.text))

    async def deliver_email(self, msg: OutboundMessage) -> None:
        if self.mail is None or not msg.to.get("email"):
            await self.failed(msg, "no_address", "no e-mail address to send to")
            return
        await self.settle(msg, "mail", await self.mail.send(msg))

    async def deliver_sms(self, msg: OutboundMessage) -> None:
        phone = msg.to.get("phone")
        if self.sms is None or not phone:
            await self.failed(msg, "no_address", "no phone number to send to")
            return
        callback = None
        if self.sms_public_url:
            query = urlencode({"message_id": msg.message_id, **({"request_id": msg.request_id} if msg.request_id else {})})
            callback = f"{self.sms_public_url.rstrip('/')}/sms/status?{query}"
        await self.settle(msg, "sms", await self.sms.send(phone, msg.text, status_callback=callback))

    async def settle(self, msg: OutboundMessage, platform: str, sent: Sent) -> None:
        self.metrics.sent.labels(platform, sent.outcome).inc()
        if sent.outcome == "retry":
            raise PlatformBusy(f"{platform}: {sent.reason} {sent.detail}")
        if sent.outcome == "refused":
            log.warning("platform refused a message", extra={"platform": platform, "reason": sent.reason,
                                                            "message_id": msg.message_id})
            await self.failed(msg, sent.reason, sent.detail)

    async def failed(self, msg: OutboundMessage, reason: str, detail: str) -> None:
        event = OutboundFailed(message_id=msg.message_id, request_id=msg.request_id, channel=msg.channel, reason=reason,
                               detail=detail[:500])
        await self.publisher.model(s.OUTBOUND_FAILED, event, msg_id=f"outbound.failed.{msg.message_id}")

    async def sms_status(self, *, message_id: str, request_id: str | None, status: str, sid: str | None,
                         error: str | None) -> str | None:
        """A delivery status callback: delivered or failed published once each; other statuses
        (queued, sent ...) are progress, not news. Answers what was published."""
        if status == "delivered":
            delivered = OutboundDelivered(message_id=message_id, request_id=request_id, channel=Channel.sms,
                                          platform_id=sid)
            await self.publisher.model(s.OUTBOUND_DELIVERED, delivered, msg_id=f"outbound.delivered.{message_id}")
            return "delivered"
        if status in ("failed", "undelivered"):
            failed = OutboundFailed(message_id=message_id, request_id=request_id, channel=Channel.sms, reason=status,
                                    detail=f"error code {error}" if error else None)
            await self.publisher.model(s.OUTBOUND_FAILED, failed, msg_id=f"outbound.failed.{message_id}")
            return "failed"
        return None
