"""Events a state change still has to publish, stored with the change itself.

A service writes an outbox marker, then its record with the change's `OutboxItem`s (one
revision-checked write), then publishes the items (each with its own Nats-Msg-Id, so publishing
twice is harmless) and clears them. A crash anywhere leaves the marker; a reconcile pass finishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from nats.js import JetStreamContext
from pydantic import BaseModel
from pydantic_core import to_json

from ..caps import DailyCount, admit, cap_key
from ..contract import subjects as s
from ..contract.enums import CHANNEL_NAMES
from .kv import ModelBucket, apply
from .publish import Publisher, together

log = logging.getLogger("kefu.outbox")


class OutboxItem(BaseModel):
    subject: str
    stream: str
    msg_id: str
    payload: dict[str, Any]


def item(subject: str, model: BaseModel, msg_id: str) -> OutboxItem:
    stream = s.STREAM_OUTBOUND if subject.startswith(s.OUTBOUND_PREFIX) else s.STREAM_EVENTS
    return OutboxItem(subject=subject, stream=stream, msg_id=msg_id, payload=model.model_dump(mode="json"))


class OutboundGate:
    """Enforces the daily cap per customer (KEFU_OUTBOUND_DAILY_CAP) with revision-checked counts in
    the kefu_outbound_caps bucket. Messages over the cap are held back and counted, not sent."""

    def __init__(self, js: JetStreamContext, *, cap: int, tz: ZoneInfo, held: Any = None, automatic_per_hour: int = 5,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._js, self._cap, self._tz, self._held, self._now = js, cap, tz, held, now
        self._hourly = automatic_per_hour
        self._bucket: ModelBucket[DailyCount] | None = None

    async def admit(self, message: dict[str, Any]) -> bool:
        """Counted against the customer's day and, when automatic, the hour's loop guard: one
        revision-checked entry per contact and day, one write per message."""
        now = self._now().astimezone(self._tz)
        key = cap_key(message.get("to") or {}, now.date())
        if key is None:
            return True
        if self._bucket is None:
            self._bucket = ModelBucket(await self._js.key_value(s.BUCKET_OUTBOUND_CAPS), DailyCount)
        message_id = str(message.get("message_id"))
        hour = f"{now:%H}" if message.get("automatic") else None
        first = DailyCount(message_ids=[message_id], automatic={hour: [message_id]} if hour else {})
        if await self._bucket.create(key, first):
            return True  # the customer's first message today (one round trip)
        decided: list[bool] = []

        def count(current: DailyCount | None) -> DailyCount | None:
            send, changed = admit(current, message_id, self._cap, hour=hour, hourly=self._hourly)
            decided[:] = [send]
            return changed

        await apply(self._bucket, key, count)
        if decided and decided[0]:
            return True  # counted now, or before (the same message published again)
        if self._held is not None:
            self._held.labels(str(message.get("kind", "other"))).inc()
        log.warning("outbound message held back: the day's cap or the hour's automatic messages reached",
                    extra={"request_id": message.get("request_id"), "kind": message.get("kind")})
        return False


def _nowhere_to_send(i: OutboxItem) -> bool:
    """A message for a customer (kefu.outbound.<channel>) without a contact to deliver to: the
    sender proved none (e.g. a web form with typed contacts only; docs/security.md#identity)."""
    channel = i.subject.removeprefix(s.OUTBOUND_PREFIX + ".")
    return i.stream == s.STREAM_OUTBOUND and channel in CHANNEL_NAMES and not i.payload.get("to")


async def publish(publisher: Publisher, items: list[OutboxItem]) -> None:
    """Publish in order within each stream (a consumer reads one stream in order); the streams'
    sequences run concurrently (an event and a message to the customer do not wait for each other)."""
    by_stream: dict[str | None, list[OutboxItem]] = {}
    for i in items:
        by_stream.setdefault(i.stream, []).append(i)
    await together(*(_publish_in_order(publisher, group) for group in by_stream.values()))


async def _publish_in_order(publisher: Publisher, items: list[OutboxItem]) -> None:
    gate: OutboundGate | None = getattr(publisher, "outbound_gate", None)
    for i in items:
        if _nowhere_to_send(i):
            log.info("message to the customer not sent: the sender proved no contact",
                     extra={"request_id": i.payload.get("request_id"), "kind": i.payload.get("kind")})
            continue
        if gate is not None and i.stream == s.STREAM_OUTBOUND and not await gate.admit(i.payload):
            continue
        await publisher.raw(i.subject, to_json(i.payload), msg_id=i.msg_id,
                            stream=i.stream, headers={"Content-Type": "application/json"})
