"""Publishing to JetStream: the ack awaited, `Nats-Msg-Id` always set, retried with the same id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import BaseModel

from ..contract import subjects as s


class Publisher:
    """Publishes to JetStream, awaits the ack, and always sets `Nats-Msg-Id`."""

    def __init__(self, js: JetStreamContext, *, timeout: float = 5.0, attempts: int = 3, metrics: Any = None) -> None:
        self._js = js
        self._timeout = timeout
        self._attempts = attempts
        self._metrics = metrics
        self.outbound_gate: Any = None  # shared.outbox.OutboundGate where the service sends to customers

    @property
    def js(self) -> JetStreamContext:
        return self._js

    async def raw(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str,
        stream: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> PubAck:
        hdrs = {"Nats-Msg-Id": msg_id, **(headers or {})}
        for attempt in range(1, self._attempts + 1):
            try:
                ack = await self._js.publish(
                    subject, payload, timeout=self._timeout, stream=stream, headers=dict(hdrs)
                )
                if self._metrics is not None:
                    self._metrics.published.labels(ack.stream, "duplicate" if ack.duplicate else "stored").inc()
                return ack
            except (TimeoutError, nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
                # same Nats-Msg-Id: a retry after a lost ack is dropped by the duplicate window
                if attempt == self._attempts:
                    raise
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def model(
        self, subject: str, model: BaseModel, *, msg_id: str, stream: str = s.STREAM_EVENTS
    ) -> PubAck:
        return await self.raw(
            subject,
            model.model_dump_json().encode(),
            msg_id=msg_id,
            stream=stream,
            headers={"Content-Type": "application/json"},
        )


async def together(*operations: Awaitable[Any]) -> list[Any]:
    """Independent NATS operations in flight at once: the client writes them in one go and their
    answers come back together, so they cost about one round trip instead of one each. Waits for
    all of them to finish (none is left running), then raises the first failure, if any."""
    results = await asyncio.gather(*operations, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
