"""The one way kefu consumes: durable pull consumers with explicit acks, bodies decoded once, and
kefu's own per-message path (decode, handle, settle, count) in place of FastStream's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from faststream import Response
from faststream.nats import NatsBroker
from faststream.prometheus.types import ProcessingStatus
from nats.aio.msg import Msg
from pydantic import BaseModel, TypeAdapter

from .settle import DeadLetter, Permanent, RetryPolicy, failure
from .topology import inbox_prefix

if TYPE_CHECKING:
    from ..observability.metrics import HandlerSeries
    from ..settings import KefuSettings

log = logging.getLogger("kefu.consume")

_consumed: ContextVar[Msg] = ContextVar("kefu_consumed_message")


def current_message() -> Msg:
    """The nats-py message the running handler was given (set by the consume path)."""
    return _consumed.get()


@dataclass(frozen=True)
class Consuming:
    """What a service's consumers share: its settings (ack wait, deliveries and their backoff, its
    reply inbox), its handler series, where what can never work goes, and the redelivery counter."""

    settings: KefuSettings
    series: HandlerSeries
    dead_letter: DeadLetter
    on_redelivery: Callable[[str], None]

    @cached_property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.settings.max_deliver, self.settings.retry_backoff_seconds)


def durable_subscriber(router: Any, consuming: Consuming, *, subject: str | list[str], stream: str, durable: str,
                       description: str, batch_size: int = 32, workers: int = 1) -> Any:
    """The one way kefu consumes: a durable pull consumer with explicit acks, bounded redelivery
    (`settle.failure`), the service's own reply inbox. The messages of one fetch (up to
    `batch_size`) are handled concurrently; with `workers` > 1 FastStream's concurrent subscriber
    keeps up to that many in flight across fetches. Either way handlers must be safe to run
    concurrently: each message's effects are idempotent and revision-checked. Several subjects: one
    consumer with those filter subjects (the server delivers nothing else).

    FastStream makes the consumer, fetches, runs a fetched batch in a task group, stops gracefully
    and documents the subscription (AsyncAPI); each message then takes kefu's path (`consume_path`),
    not FastStream's: FastStream's per-message machinery (context scopes, middleware objects, its
    parser and decoder, log context) cost several times what kefu's path costs (docs/performance.md,
    "Platform, second pass"). The body is decoded once, as the handler's parameter asks
    (`decoder_for`)."""
    from faststream import AckPolicy
    from faststream.nats import ConsumerConfig, JStream, PullSub

    settings = consuming.settings
    several = isinstance(subject, list)

    def register(handler: Callable[..., Awaitable[None]]) -> Any:
        subscriber = router.subscriber(
            "" if several else subject,
            stream=JStream(stream, declare=False),
            durable=durable,
            pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
            config=ConsumerConfig(ack_wait=settings.ack_wait_seconds, max_deliver=settings.max_deliver,
                                  max_ack_pending=1000, filter_subjects=list(subject) if several else []),
            ack_policy=AckPolicy.MANUAL,  # the consume path settles every message itself
            inbox_prefix=inbox_prefix(settings),
            title=durable,
            description=description,
            **({"max_workers": workers} if workers > 1 else {}),
        )
        registered = subscriber(handler)
        # FastStream's `consume` (and its test client) hand each message to `process_message`
        subscriber.process_message = consume_path(handler, consuming, durable, lock=subscriber.lock)
        return registered

    return register


_NO_RESPONSE = Response(None)


def consume_path(handler: Callable[[Any], Awaitable[None]], consuming: Consuming, durable: str, *,
                 lock: Any) -> Callable[[Msg], Awaitable[Response]]:
    """One delivery: counted in FastStream's handler series (labelled by the durable consumer),
    decoded, handled, then acked, NAKed with a delay or dead-lettered (`settle.failure`). Held in
    FastStream's `lock` while it runs, so that a graceful stop waits for it."""
    decode = decoder_for(handler)
    series = consuming.series.of(durable)

    async def process_message(msg: Msg) -> Response:
        token = _consumed.set(msg)
        series.received.inc()
        series.size.observe(len(msg.data))
        series.in_process.inc()
        status = ProcessingStatus.acked
        start = time.perf_counter()
        try:
            with lock:
                if msg.reply and msg.metadata.num_delivered > 1:
                    consuming.on_redelivery(durable)
                try:
                    await handler(decode(msg.data))
                except Exception as exc:  # noqa: BLE001 - every failure is settled: retried or dead-lettered
                    status = await _settle(msg, exc, consuming, series)
                else:
                    await msg.ack()
        except Exception as exc:  # noqa: BLE001 - the ack itself failed (connection lost): redelivered later
            log.warning("could not settle a message", extra={"consumer": durable, "error": type(exc).__name__})
            status = ProcessingStatus.error
        finally:
            series.duration.observe(time.perf_counter() - start)
            series.in_process.dec()
            series.processed(status.value).inc()
            _consumed.reset(token)
        return _NO_RESPONSE

    return process_message


async def _settle(msg: Msg, exc: Exception, consuming: Consuming, series: Any) -> ProcessingStatus:
    n = msg.metadata.num_delivered if msg.reply else consuming.policy.max_deliver
    verdict = failure(exc, n, consuming.policy)
    if verdict.dead_letter:
        log.error("dead-lettering message", extra={"subject": msg.subject, "deliveries": n, "reason": verdict.reason})
        try:
            await consuming.dead_letter(msg, verdict.reason)
        except Exception as failed:  # the message stays in the stream: delivered again, dead-lettered then
            log.exception("could not dead-letter a message", extra={"subject": msg.subject})
            series.exception(type(failed).__name__).inc()
            await msg.nak()
            return ProcessingStatus.error
        await msg.term()
        return ProcessingStatus.rejected
    log.warning("handler failed, retrying",
                extra={"subject": msg.subject, "deliveries": n, "delay": verdict.delay, "error": verdict.reason})
    await msg.nak(delay=verdict.delay)
    return ProcessingStatus.nacked


def decoder_for(handler: Callable[..., Any]) -> Callable[[bytes], Any]:
    """The handler's one parameter made from the body: a pydantic model is validated straight from
    the JSON bytes (`model_validate_json`, one pass), as is any other typed parameter (a union of
    models with its discriminator, through pydantic's `TypeAdapter`); `bytes` is the body as it came;
    a dict, or no annotation, is parsed JSON. A body that does not decode raises, and the consume
    path dead-letters it."""
    import inspect
    import typing

    params = list(inspect.signature(handler).parameters)
    kind = typing.get_type_hints(handler, include_extras=True).get(params[0], Any) if params else bytes
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind.model_validate_json

    def as_bytes(body: bytes) -> bytes:
        return body

    def as_object(body: bytes) -> dict[str, Any]:
        value = json.loads(body)
        if not isinstance(value, dict):
            raise Permanent(f"expected a JSON object, got {type(value).__name__}")
        return value

    if kind is bytes:
        return as_bytes
    if kind is dict or typing.get_origin(kind) is dict:
        return as_object
    if kind is Any:
        return json.loads
    return TypeAdapter(kind).validate_json


def durable_consumers(broker: NatsBroker) -> list[tuple[str, str]]:
    """(stream, durable) of every durable consumer the broker's subscribers use."""
    found = []
    for sub in broker.subscribers:
        stream = getattr(getattr(sub, "stream", None), "name", None)
        durable = getattr(getattr(sub, "config", None), "durable_name", None)
        if stream and durable:
            found.append((stream, durable))
    return found
