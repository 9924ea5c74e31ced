"""NATS edge of metrics: the replay of the event log into the projection, read by sequence with
batched direct gets (no consumer: shared/nats/logreader.py), and the watch that tells readiness when
the replay stalls."""

from __future__ import annotations

import asyncio
import logging

import nats.errors

from shared.contract import subjects as s
from shared.nats.logreader import LogEntry, LogReader
from shared.nats.publish import audit_of
from shared.runtime import Runtime

from .domain.indicators import Projection, decode_event
from .lookup import LookupIndex

log = logging.getLogger("kefu.metrics")

# What metrics publishes: only the audit record of each search of requests (GET /v1/requests).
PUBLISHES = [audit_of("request.search", "a search of requests: the ids found (metrics)")]


class Replay:
    """Applies the stream to the projection; caught up once it reached the last event at start."""

    def __init__(self, projection: Projection, index: LookupIndex | None = None) -> None:
        self.projection = projection
        self.index = index  # the lookup (GET /v1/requests), fed from the same events
        self.target = 0
        self.seq = 0

    @property
    def caught_up(self) -> bool:
        return self.seq >= self.target

    def apply(self, entry: LogEntry) -> dict | None:
        """The event applied to the projection, and returned for the index; an event that is not
        a JSON object is skipped (logged), never the end of the replay."""
        self.seq = entry.seq
        event = decode_event(entry.data)
        if event is None:
            log.warning("undecodable event skipped", extra={"subject": entry.subject, "seq": entry.seq})
            return None
        self.projection.apply(entry.subject, event)
        return event

    async def follow(self, reader: LogReader, *, idle: float = 0.2, pace: float = 0.1) -> None:
        """Read the log from where the projection is, for ever: full batches back to back while
        catching up; once a batch comes back short (caught up), the next is asked for `pace`
        seconds later, and `idle` seconds after an empty one. An event counts within about that;
        the server answers a few requests a second with many events each, not one request per
        handful of events."""
        while True:
            try:
                entries = await reader.batch(seq=self.seq + 1, size=BATCH)
            except nats.errors.Error:  # NATS briefly away (readiness says so): read on when it is back
                entries = []
            decoded = [(entry.seq, entry.subject, self.apply(entry)) for entry in entries]
            if self.index is not None and decoded:
                self.index.apply_batch(decoded)
            if not entries:
                await asyncio.sleep(idle)
            elif len(entries) < BATCH:
                await asyncio.sleep(pace)


BATCH = 500
REPLAY = "metrics-replay"


async def log_end(rt: Runtime) -> int:
    """The event log's last sequence."""
    assert rt.js is not None
    return (await rt.js.stream_info(s.STREAM_EVENTS)).state.last_seq


async def watch_replay(rt: Runtime, replay: Replay) -> None:
    """The replay has no consumer: nothing on the server says it is stuck. Compare its
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
