"""Settling a consumed message: ack on success, delayed NAK on error, dead letter for what can never
work (`Permanent`, undecodable, out of deliveries): the decision (`failure`) and the dead letter.
The consume path (consume.py) carries it out. See docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nats.aio.msg import Msg
from pydantic import ValidationError

from ..contract import subjects as s
from .topology import MAX_RAW_PAYLOAD

if TYPE_CHECKING:
    from .publish import Publisher

log = logging.getLogger("kefu.settle")


class Permanent(Exception):
    """A message that can never be handled, however often it is delivered."""


DeadLetter = Callable[[Msg, str], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_deliver: int
    backoff: Sequence[float]

    def delay(self, num_delivered: int) -> float:
        """Delay before the next delivery after the `num_delivered`-th one failed."""
        return float(self.backoff[min(max(num_delivered, 1), len(self.backoff)) - 1])

    def gives_up(self, num_delivered: int) -> bool:
        return num_delivered >= self.max_deliver


def make_dead_letter(publisher: Publisher, consumer: str) -> DeadLetter:
    async def dead_letter(msg: Msg, reason: str) -> None:
        meta = msg.metadata
        headers = {
            "Kefu-Dlq-Reason": _header_safe(reason),
            "Kefu-Dlq-Consumer": consumer,
            "Kefu-Original-Subject": msg.subject,
            "Kefu-Original-Stream": meta.stream,
            "Kefu-Original-Seq": str(meta.sequence.stream),
            "Kefu-Deliveries": str(meta.num_delivered),
        }
        await publisher.raw(
            s.dlq_subject(consumer),
            msg.data[:MAX_RAW_PAYLOAD - 4096],
            msg_id=f"dlq:{meta.stream}:{meta.sequence.stream}:{consumer}",
            stream=s.STREAM_DLQ,
            headers=headers,
        )

    return dead_letter


@dataclass(frozen=True)
class Verdict:
    """What to do with a message whose handler failed: dead-letter it (with the reason), or
    deliver it again after `delay` seconds."""

    dead_letter: bool
    reason: str
    delay: float = 0.0


def failure(exc: Exception, num_delivered: int, policy: RetryPolicy) -> Verdict:
    """A failed delivery's verdict: what can never work (`Permanent`, a body that does not decode)
    and the last allowed delivery go to the dead letters; anything else is retried after the
    policy's delay."""
    reason = describe(exc)
    if isinstance(exc, Permanent | ValidationError | json.JSONDecodeError) or policy.gives_up(num_delivered):
        return Verdict(dead_letter=True, reason=reason)
    return Verdict(dead_letter=False, reason=reason, delay=policy.delay(num_delivered))


def describe(exc: BaseException) -> str:
    """A failure's reason for logs and dead-letter headers, without the data that caused it:
    pydantic's message quotes the input (a customer's words, contacts), so only locations and types."""
    if isinstance(exc, ValidationError):
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['type']}"
                          for e in exc.errors(include_input=False, include_url=False)[:5])
        return f"ValidationError: {where}"[:500]
    if isinstance(exc, json.JSONDecodeError):
        return f"JSONDecodeError: {exc.msg} at position {exc.pos}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def _header_safe(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:500]
