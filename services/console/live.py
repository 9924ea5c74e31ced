"""The live stream's edge: the event log's tail in memory, each page's stream from its last event
on, and the access facts of each request read from routing's bucket.

A page's stream is positioned by the event log's sequence: every notice carries it as its SSE
`id`, and a page that reconnects (a network blip, this process restarted, another replica)
sends the last one back as `Last-Event-ID`, so it misses nothing and sees nothing twice. Recent
events come from memory; a page further behind is read from the log (direct gets, no consumer)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from shared.http import auth
from shared.nats.logreader import LogEntry, LogReader

from .domain.live import Access, Notice, access_of, may_see, notice

log = logging.getLogger("kefu.console.live")
BATCH = 500


@dataclass
class Tail:
    """The log's last `size` events, decoded once for every page; followed from `start` on."""

    reader: LogReader
    size: int
    next_seq: int = 1
    entries: deque[tuple[int, Notice | None]] = field(default_factory=deque)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def first_seq(self) -> int:
        return self.entries[0][0] if self.entries else self.next_seq

    async def follow(self, *, idle: float = 0.2) -> None:
        while True:
            try:
                batch = await self.reader.batch(seq=self.next_seq, size=BATCH)
            except nats.errors.Error:
                batch = []
            if batch:
                for entry in batch:
                    self.entries.append((entry.seq, decode(entry)))
                    while len(self.entries) > self.size:
                        self.entries.popleft()
                self.next_seq = batch[-1].seq + 1
                async with self.changed:
                    self.changed.notify_all()
            if len(batch) < BATCH:
                await asyncio.sleep(idle)

    def moved_past(self, seq: int) -> bool:
        return self.next_seq > seq

    def since(self, seq: int) -> list[tuple[int, Notice | None]]:
        """What the tail holds from `seq` on (it must be >= first_seq)."""
        if not self.entries or seq >= self.next_seq:
            return []
        start = max(seq - self.entries[0][0], 0)
        return [self.entries[i] for i in range(start, len(self.entries))]


def decode(entry: LogEntry) -> Notice | None:
    try:
        event = json.loads(entry.data)
    except ValueError:
        return None
    return notice(entry.subject, event) if isinstance(event, dict) else None


class AccessCache:
    """Each request's access facts, read from routing's record; kept `ttl` seconds so that one
    event shown to many pages costs one read, and a transfer shows within that time."""

    def __init__(self, bucket: KeyValue, *, ttl: float = 2.0, size: int = 10_000) -> None:
        self.bucket, self.ttl, self.size = bucket, ttl, size
        self._cache: OrderedDict[str, tuple[float, Access | None]] = OrderedDict()

    async def get(self, request_id: str) -> Access | None:
        now = time.monotonic()
        hit = self._cache.get(request_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        try:
            entry = await self.bucket.get(request_id)
            found = access_of(entry.value) if entry.value else None
        except nats.js.errors.KeyNotFoundError:
            found = None
        self._cache[request_id] = (now, found)
        self._cache.move_to_end(request_id)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return found


async def notices(tail: Tail, reader: LogReader, access: AccessCache, who: auth.Principal, *, after: int | None,
                  keepalive: float) -> AsyncIterator[tuple[int, Notice] | None]:
    """The notices `who` may see from sequence `after + 1` on (from now on without `after`), for
    ever; None every `keepalive` seconds without one."""
    seq = tail.next_seq if after is None else after + 1
    while True:
        if seq < tail.first_seq:  # behind what memory holds: read from the log
            try:
                batch = await reader.batch(seq=seq, size=BATCH)
            except nats.errors.Error:  # NATS briefly away: say so with a keep-alive, try again
                await asyncio.sleep(1)
                yield None
                continue
            entries = [(e.seq, decode(e)) for e in batch if e.seq < tail.first_seq]
            if not entries:  # nothing left before what memory holds (or removed from the log)
                seq = tail.first_seq
                continue
        else:
            entries = tail.since(seq)
        if not entries:
            async with tail.changed:
                try:
                    async with asyncio.timeout(keepalive):
                        await tail.changed.wait_for(functools.partial(tail.moved_past, seq))
                except TimeoutError:
                    yield None
            continue
        for number, n in entries:
            seq = number + 1
            if n is not None and may_see(who, await access.get(n.request_id), n):
                yield number, n
