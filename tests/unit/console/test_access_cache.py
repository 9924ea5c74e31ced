"""The console's cache of who may see a request: many pages asking at once share one read of
routing's record; a failed read fails them alike and is tried again by the next ask."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import nats.errors

from services.console.live import AccessCache

RECORD = json.dumps({"department": "business", "agent_id": "a1", "assignment": {"co_departments": []}}).encode()


class Bucket:
    """Stands in for a KeyValue's `get` only, counting the reads; answers when released."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.fail = False

    async def get(self, key: str) -> Any:
        self.reads += 1
        await self.release.wait()
        if self.fail:
            raise nats.errors.TimeoutError
        return SimpleNamespace(value=RECORD)


async def test_pages_asking_at_once_share_one_read() -> None:
    bucket = Bucket()
    cache = AccessCache(bucket, ttl=60)  # type: ignore[arg-type]
    asks = [asyncio.create_task(cache.get("req_x")) for _ in range(50)]
    await asyncio.sleep(0)
    bucket.release.set()
    found = await asyncio.gather(*asks)
    assert bucket.reads == 1 and {f.department for f in found} == {"business"}
    assert (await cache.get("req_x")).agent_id == "a1" and bucket.reads == 1  # reused within the ttl


async def test_a_failed_read_fails_every_waiter_and_is_tried_again() -> None:
    bucket = Bucket()
    bucket.fail = True
    cache = AccessCache(bucket, ttl=60)  # type: ignore[arg-type]
    asks = [asyncio.create_task(cache.get("req_x")) for _ in range(5)]
    await asyncio.sleep(0)
    bucket.release.set()
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, nats.errors.TimeoutError) for r in results) and bucket.reads == 1
    bucket.fail = False
    assert (await cache.get("req_x")).department == "business" and bucket.reads == 2


async def test_entries_expire_and_the_cache_is_bounded() -> None:
    bucket = Bucket()
    bucket.release.set()
    cache = AccessCache(bucket, ttl=0, size=3)  # type: ignore[arg-type]
    for rid in ("a", "b", "c", "d", "a"):
        await cache.get(rid)
    assert bucket.reads == 5 and len(cache) == 3
