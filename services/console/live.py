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


KEEPALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class Line:
    """An event of the log as pages get it: its notice (None: pages are not told) and the notice's
    server-sent-event lines, encoded once for every page."""

    seq: int
    notice: Notice | None
    sse: bytes = b""


@dataclass
class Tail:
    """The log's last `size` events, decoded once for every page; followed from `start` on."""

    reader: LogReader
    size: int
    next_seq: int = 1
    entries: deque[Line] = field(default_factory=deque)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def first_seq(self) -> int:
        return self.entries[0].seq if self.entries else self.next_seq

    async def follow(self, *, idle: float = 0.1) -> None:
        while True:
            try:
                batch = await self.reader.batch(seq=self.next_seq, size=BATCH)
            except nats.errors.Error:
                batch = []
            if batch:
                for entry in batch:
                    self.entries.append(decode(entry))
                    while len(self.entries) > self.size:
                        self.entries.popleft()
                self.next_seq = batch[-1].seq + 1
                async with self.changed:
                    self.changed.notify_all()
            if len(batch) < BATCH:
                await asyncio.sleep(idle)

    def moved_past(self, seq: int) -> bool:
        return self.next_seq > seq

    def since(self, seq: int) -> list[Line]:
        """What the tail holds from `seq` on (it must be >= first_seq)."""
        if not self.entries or seq >= self.next_seq:
            return []
        start = max(seq - self.entries[0].seq, 0)
        return [self.entries[i] for i in range(start, len(self.entries))]


def decode(entry: LogEntry) -> Line:
    try:
        event = json.loads(entry.data)
    except ValueError:
        return Line(entry.seq, None)
    n = notice(entry.subject, event) if isinstance(event, dict) else None
    if n is None:
        return Line(entry.seq, None)
    body = n.model_dump_json(exclude_none=True)
    return Line(entry.seq, n, f"id: {entry.seq}\nevent: {n.kind}\ndata: {body}\n\n".encode())


class AccessCache:
    """Each request's access facts, read from routing's record; kept `ttl` seconds so that one
    event shown to many pages costs one read (pages asking at once share the read in flight), and
    a transfer shows within that time."""

    def __init__(self, bucket: KeyValue, *, ttl: float = 2.0, size: int = 10_000) -> None:
        self.bucket, self.ttl, self.size = bucket, ttl, size
        self._cache: OrderedDict[str, tuple[float, asyncio.Future[Access | None]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, request_id: str) -> Access | None:
        now = time.monotonic()
        hit = self._cache.get(request_id)
        if hit is not None and now - hit[0] < self.ttl:
            return await asyncio.shield(hit[1])
        found: asyncio.Future[Access | None] = asyncio.get_running_loop().create_future()
        self._cache[request_id] = (now, found)
        self._cache.move_to_end(request_id)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        try:
            entry = await self.bucket.get(request_id)
            found.set_result(access_of(entry.value) if entry.value else None)
        except nats.js.errors.KeyNotFoundError:
            found.set_result(None)
        except BaseException as exc:  # the pages waiting on this read fail alike (they reconnect), and the next asks again
            self._cache.pop(request_id, None)
            found.set_exception(exc)
            found.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        return found.result()


async def notices(tail: Tail, reader: LogReader, access: AccessCache, who: auth.Principal, *, after: int | None,
                  keepalive: float) -> AsyncIterator[bytes]:
    """The server-sent events `who` may see from sequence `after + 1` on (from now on without
    `after`), for ever: each chunk every notice that came together, or a keep-alive comment every
    `keepalive` seconds without one. One write per chunk, not per notice: with hundreds of pages
    open, the writes are what a notice costs."""
    seq = tail.next_seq if after is None else after + 1
    while True:
        if seq < tail.first_seq:  # behind what memory holds: read from the log
            try:
                batch = await reader.batch(seq=seq, size=BATCH)
            except nats.errors.Error:  # NATS briefly away: say so with a keep-alive, try again
                await asyncio.sleep(1)
                yield KEEPALIVE
                continue
            entries = [decode(e) for e in batch if e.seq < tail.first_seq]
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
                    yield KEEPALIVE
            continue
        shown = []
        for line in entries:
            if line.notice is not None and may_see(who, await access.get(line.notice.request_id), line.notice):
                shown.append(line.sse)
        seq = entries[-1].seq + 1
        if shown:
            yield b"".join(shown)
