"""`shared.nats.kv.apply`, the one way kefu changes state, on a real nats-server: concurrent
writers of one key lose nothing, a transition that changes nothing writes nothing, a missing key
is created once, and a conflict is retried from a fresh read."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import KeyValueConfig
from pydantic import BaseModel

from shared.nats.client import AckingJetStream
from shared.nats.kv import Applied, Conflict, ModelBucket, apply

pytestmark = pytest.mark.integration


class Tally(BaseModel):
    seen: list[str] = []


@pytest.fixture
async def bucket(nats_server):
    nc = await nats.connect(nats_server.url)
    js = await AckingJetStream.open(nc)
    kv = await js.create_key_value(KeyValueConfig(bucket="apply_test", history=1))
    yield ModelBucket(kv, Tally)
    await nc.close()


def adding(item: str):
    def add(tally: Tally | None) -> Tally | None:
        seen = tally.seen if tally is not None else []
        return None if item in seen else Tally(seen=[*seen, item])
    return add


async def test_concurrent_writers_of_one_key_lose_no_change(bucket) -> None:
    items = [f"m{i}" for i in range(12)]  # replicas and API calls at once: a dozen, not hundreds
    results = await asyncio.gather(*(apply(bucket, "k", adding(i)) for i in items))
    stored, revision = await bucket.get("k")
    assert sorted(stored.seen) == sorted(items)  # 12 writers, every one's change is there
    assert all(r.written for r in results)
    assert revision == max(r.revision for r in results)


async def test_a_transition_that_changes_nothing_writes_nothing(bucket) -> None:
    first = await apply(bucket, "k", adding("a"))
    again = await apply(bucket, "k", adding("a"))  # a redelivery of the same change
    assert first.written and not again.written
    assert again == Applied(Tally(seen=["a"]), first.revision, written=False)
    assert (await bucket.get("k"))[1] == first.revision


async def test_known_skips_the_read_and_a_stale_known_is_retried_from_a_fresh_read(bucket) -> None:
    first = await apply(bucket, "k", adding("a"))
    await apply(bucket, "k", adding("b"))  # someone else wrote since `first`
    calls: list[list[str]] = []

    def add_c(tally: Tally | None) -> Tally | None:
        calls.append(list(tally.seen) if tally else [])
        return adding("c")(tally)

    done = await apply(bucket, "k", add_c, known=(first.value, first.revision))
    assert calls == [["a"], ["a", "b"]]  # the stale value first, then the stored one
    assert done.value.seen == ["a", "b", "c"]


async def test_before_write_runs_before_each_write_and_a_missing_key_is_created(bucket) -> None:
    marks: list[list[str]] = []

    async def mark(value: Tally) -> None:
        marks.append(value.seen)

    created = await apply(bucket, "new", adding("x"), before_write=mark)
    assert created.written and marks == [["x"]]
    absent = await apply(bucket, "none", lambda v: None)
    assert absent == Applied(None, 0, written=False) and await bucket.get("none") is None


async def test_endless_conflicts_end_in_conflict(bucket) -> None:
    await apply(bucket, "k", adding("a"))
    n = 0

    def racing(tally: Tally | None) -> Tally | None:
        nonlocal n
        n += 1
        return Tally(seen=[*(tally.seen if tally else []), str(n)])

    async def interfering(value: Tally) -> None:  # another writer gets in before every write
        await bucket.kv.put("k", Tally(seen=["other"]).model_dump_json().encode())

    with pytest.raises(Conflict):
        await apply(bucket, "k", racing, before_write=interfering, attempts=3)
    assert n == 3
