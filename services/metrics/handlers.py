"""NATS edge of metrics: the replay of the event log (its server-side copy KEFU_METRICS) into the
projection, and the watch that tells readiness when the replay stalls."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from nats.aio.msg import Msg

from shared import subjects as s
from shared.runtime import Runtime

from .domain.indicators import Projection

log = logging.getLogger("kefu.metrics")


class Replay:
    """Applies the stream to the projection; caught up once it reached the last event at start."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.target = 0
        self.seq = 0
        self.subscription: Any = None  # the ordered consumer, once started

    @property
    def caught_up(self) -> bool:
        return self.seq >= self.target

    async def on_event(self, msg: Msg) -> None:
        try:
            self.projection.apply(msg.subject, json.loads(msg.data))
        except (ValueError, UnicodeDecodeError):
            log.warning("undecodable event skipped", extra={"subject": msg.subject})
        self.seq = msg.metadata.sequence.stream


REPLAY = "metrics-replay"


async def log_end(rt: Runtime) -> int:
    """The event log's last sequence as far as metrics can see it: KEFU_METRICS mirrors KEFU_EVENTS
    with the same sequence numbers, plus what the mirror has not copied yet (its lag)."""
    assert rt.js is not None
    info = await rt.js.stream_info(s.STREAM_METRICS)
    return info.state.last_seq + ((info.mirror.lag or 0) if info.mirror else 0)


async def watch_replay(rt: Runtime, replay: Replay) -> None:
    """The replay is an ordered push consumer: nothing on the server says it is stuck. Compare its
    position with the stream's last sequence every check; events waiting and no move = stalled."""
    assert rt.js is not None
    while True:
        await asyncio.sleep(rt.settings.consumer_check_seconds)
        try:
            last = await log_end(rt)
        except Exception:  # noqa: BLE001 - NATS briefly away: readiness says so already
            continue
        if rt.progress.observe(REPLAY, position=replay.seq, waiting=last - replay.seq):
            log.warning("event replay stalled", extra={"position": replay.seq, "last": last})
