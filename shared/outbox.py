"""Events a state change still has to publish, stored with the change itself.

A service writes an outbox marker, then its record with the change's `OutboxItem`s (one
revision-checked write), then publishes the items (each with its own Nats-Msg-Id, so publishing
twice is harmless) and clears them. A crash anywhere leaves the marker; a reconcile pass finishes.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from . import subjects as s
from .bus import Publisher


class OutboxItem(BaseModel):
    subject: str
    stream: str
    msg_id: str
    payload: dict[str, Any]


def item(subject: str, model: BaseModel, msg_id: str) -> OutboxItem:
    stream = s.STREAM_OUTBOUND if subject.startswith(s.OUTBOUND_PREFIX) else s.STREAM_EVENTS
    return OutboxItem(subject=subject, stream=stream, msg_id=msg_id, payload=model.model_dump(mode="json"))


async def publish(publisher: Publisher, items: list[OutboxItem]) -> None:
    for i in items:
        await publisher.raw(i.subject, json.dumps(i.payload, ensure_ascii=False).encode(), msg_id=i.msg_id,
                            stream=i.stream, headers={"Content-Type": "application/json"})
