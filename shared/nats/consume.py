"""The one way kefu consumes: durable pull consumers with explicit acks, bodies decoded once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.nats import NatsBroker, NatsMessage
from nats.aio.msg import Msg
from pydantic import BaseModel

from ..settings import KefuSettings
from .settle import Permanent
from .topology import inbox_prefix


def durable_subscriber(router: Any, settings: KefuSettings, *, subject: str | list[str], stream: str, durable: str,
                       description: str, batch_size: int = 32, workers: int = 1) -> Any:
    """The one way kefu consumes: a durable pull consumer with explicit acks, bounded redelivery
    (settled by the settle middleware), the service's own reply inbox. The messages of one fetch
    (up to `batch_size`) are handled concurrently; with `workers` > 1 FastStream's concurrent
    subscriber keeps up to that many in flight across fetches. Either way handlers must be safe
    to run concurrently: each message's effects are idempotent and revision-checked. Several
    subjects: one consumer with those filter subjects (the server delivers nothing else).

    The body is decoded once, by what the handler's parameter asks for (`decoder_for`)."""
    from faststream import AckPolicy
    from faststream.nats import ConsumerConfig, JStream, PullSub

    several = isinstance(subject, list)

    def register(handler: Callable[..., Awaitable[None]]) -> Any:
        return router.subscriber(
            "" if several else subject,
            stream=JStream(stream, declare=False),
            durable=durable,
            pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
            config=ConsumerConfig(ack_wait=settings.ack_wait_seconds, max_deliver=settings.max_deliver,
                                  max_ack_pending=1000, filter_subjects=list(subject) if several else []),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            inbox_prefix=inbox_prefix(settings),
            title=durable,
            description=description,
            parser=parse_delivery,
            decoder=decoder_for(handler),
            **({"max_workers": workers} if workers > 1 else {}),
        )(handler)

    return register


async def parse_delivery(msg: Msg, _: Any = None) -> NatsMessage:
    """FastStream's message for a JetStream delivery, with the publisher's `Nats-Msg-Id` (which
    every kefu publish carries) as its message and correlation id: the id a log line or trace then
    names is the one the stream deduplicates on. FastStream's own parser draws a uuid4 for each
    message without a `correlation_id` header."""
    headers = msg.headers or {}
    msg_id = headers.get("correlation_id") or headers.get("Nats-Msg-Id")
    return NatsMessage(raw_message=msg, body=msg.data, reply_to=headers.get("reply_to", ""), headers=headers,
                       content_type=headers.get("content-type") or headers.get("Content-Type"),
                       message_id=headers.get("message_id") or msg_id, correlation_id=msg_id)


def decoder_for(handler: Callable[..., Any]) -> Callable[[Any], Any]:
    """A FastStream decoder for the handler's one parameter: a pydantic model is validated straight
    from the JSON bytes (`model_validate_json`, one pass; FastStream would `json.loads` and then
    validate the dict), `bytes` is the body as it came (FastStream would try JSON on it first),
    anything else is parsed JSON. A body that does not decode raises inside the settle middleware,
    which dead-letters it."""
    import inspect
    import typing

    params = list(inspect.signature(handler).parameters)
    kind = typing.get_type_hints(handler).get(params[0]) if params else bytes
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        model = kind

        async def as_model(msg: Any) -> Any:
            return model.model_validate_json(msg.body)
        return as_model

    # coroutines: FastStream runs a plain function given as decoder in a worker thread
    async def as_bytes(msg: Any) -> bytes:
        return msg.body

    async def as_json(msg: Any) -> Any:
        return json.loads(msg.body)

    async def as_object(msg: Any) -> dict[str, Any]:
        value = json.loads(msg.body)
        if not isinstance(value, dict):
            raise Permanent(f"expected a JSON object, got {type(value).__name__}")
        return value

    if kind is bytes:
        return as_bytes
    return as_object if kind is dict or typing.get_origin(kind) is dict else as_json


def durable_consumers(broker: NatsBroker) -> list[tuple[str, str]]:
    """(stream, durable) of every durable consumer the broker's subscribers use."""
    found = []
    for sub in broker.subscribers:
        stream = getattr(getattr(sub, "stream", None), "name", None)
        durable = getattr(getattr(sub, "config", None), "durable_name", None)
        if stream and durable:
            found.append((stream, durable))
    return found
