"""Events a state change still has to publish, stored with the change itself.

A service writes an outbox marker, then its record with the change's `OutboxItem`s (one
revision-checked write), then publishes the items (each with its own Nats-Msg-Id, so publishing
twice is harmless) and clears them. A crash anywhere leaves the marker; a reconcile pass finishes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from nats.js import JetStreamContext
from pydantic import BaseModel

from ..caps import DailyCount, admit, cap_key, hour_key
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
        to = message.get("to") or {}
        now = self._now()
        key = cap_key(to, now.astimezone(self._tz).date())
        if key is None:
            return True
        if self._bucket is None:
            self._bucket = ModelBucket(await self._js.key_value(s.BUCKET_OUTBOUND_CAPS), DailyCount)
        message_id = str(message.get("message_id"))
        # the loop guard first: an automatic message over the hour's count is not counted for the day
        if message.get("automatic") and not await self._count(hour_key(to, now) or key, message_id, self._hourly):
            return self._hold(message, "loop guard: automatic messages to this address this hour")
        if not await self._count(key, message_id, self._cap):
            return self._hold(message, "daily cap reached")
        return True

    async def _count(self, key: str, message_id: str, cap: int) -> bool:
        assert self._bucket is not None
        if await self._bucket.create(key, DailyCount(message_ids=[message_id])):
            return True  # the first message under this key (one round trip)
        counted = await apply(self._bucket, key, lambda count: admit(count, message_id, cap)[1])
        # counted now, or before (the same message published again)
        return counted.value is not None and message_id in counted.value.message_ids

    def _hold(self, message: dict[str, Any], why: str) -> bool:
        if self._held is not None:
            self._held.labels(str(message.get("kind", "other"))).inc()
        log.warning("outbound message held back: %s", why,
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
        await publisher.raw(i.subject, json.dumps(i.payload, ensure_ascii=False).encode(), msg_id=i.msg_id,
                            stream=i.stream, headers={"Content-Type": "application/json"})
