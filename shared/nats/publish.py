"""Publishing to JetStream: the ack awaited, `Nats-Msg-Id` always set, retried with the same id;
and what each service declares it publishes (`Publishes`), which is its AsyncAPI publish side and
the only contract subjects its `Publisher` will publish to."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import BaseModel

from ..contract import subjects as s
from .settle import Permanent

# the streams others read as kefu's contract: every subject published there is declared and documented
CONTRACT_STREAMS = frozenset({s.STREAM_EVENTS, s.STREAM_OUTBOUND, s.STREAM_AUDIT})


@dataclass(frozen=True)
class Publishes:
    """A subject a service publishes to a contract stream, with its payload's model. A `{name}`
    token varies (`kefu.outbound.supervisor.{department}`)."""

    subject: str
    model: type[BaseModel]
    description: str
    stream: str = s.STREAM_EVENTS
    title: str | None = None

    @property
    def pattern(self) -> str:
        return re.sub(r"\{[^}.]+\}", "*", self.subject)


class Undeclared(Permanent):
    """A publish to a contract stream on a subject the service does not declare (and so does not
    document): a programming error, found by any test that makes the service publish it. A message
    whose handling raises it is dead-lettered at once (retrying cannot help)."""


class Contract:
    """The subjects a service may publish to the contract streams, from its declarations."""

    def __init__(self, declared: list[Publishes]) -> None:
        self._patterns = [(d.stream, d.pattern.split(".")) for d in declared]
        self._allowed: dict[tuple[str, str], bool] = {}  # bounded: contract subjects are a few dozen

    def allows(self, stream: str, subject: str) -> bool:
        key = (stream, subject)
        found = self._allowed.get(key)
        if found is None:
            tokens = subject.split(".")
            found = self._allowed[key] = any(
                stream == declared_stream and len(tokens) == len(pattern)
                and all(p in ("*", t) for p, t in zip(pattern, tokens, strict=True))
                for declared_stream, pattern in self._patterns)
        return found


class Publisher:
    """Publishes to JetStream, awaits the ack, and always sets `Nats-Msg-Id`. With a `contract`,
    a publish to a contract stream must be on a declared subject."""

    def __init__(self, js: JetStreamContext, *, timeout: float = 5.0, attempts: int = 3, metrics: Any = None,
                 contract: Contract | None = None) -> None:
        self._js = js
        self._timeout = timeout
        self._attempts = attempts
        self._metrics = metrics
        self.contract = contract
        self.outbound_gate: Any = None  # shared.nats.outbox.OutboundGate where the service sends to customers

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
        if stream in CONTRACT_STREAMS and self.contract is not None and not self.contract.allows(stream, subject):
            raise Undeclared(f"{subject} on {stream} is not declared (services/<name>/handlers.py PUBLISHES)")
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


def to_customers() -> list[Publishes]:
    """kefu.outbound.<channel> for every channel, and the supervisors' alerts (routing and feedback
    both publish them: one description, one channel in the AsyncAPI document)."""
    description = ("Messages for customers on {channel} (receipts, progress, results, surveys, revisits), "
                   "for its adapter to deliver.")
    from ..contract.enums import Channel
    from ..contract.models import OutboundMessage, SupervisorAlert

    return [*(Publishes(s.outbound_subject(c), OutboundMessage, description.format(channel=c.value), s.STREAM_OUTBOUND)
              for c in Channel),
            Publishes(f"{s.OUTBOUND_PREFIX}.supervisor.{{department}}", SupervisorAlert,
                      "Alerts for a department's supervisors: emergencies, escalations, offers nobody accepted, "
                      "reopened requests.", s.STREAM_OUTBOUND, title=f"{s.OUTBOUND_PREFIX}.supervisor.<department>")]


def audit_of(action: str, what: str) -> Publishes:
    """The audit record of a staff member's read through the API (shared.http.security.audit)."""
    from ..contract.models import AuditRecord

    return Publishes(s.audit_subject(action), AuditRecord, f"Audit trail: a staff member read {what} through the API.",
                     s.STREAM_AUDIT)
