"""Transient keys (queue entries, outbox markers) leave nothing behind once their removal expires."""

from __future__ import annotations

import nats.js.errors
import pytest
from nats.js.api import StorageType, StreamConfig

from shared.contract import subjects as s
from shared.nats.kv import list_keys, remove
from shared.nats.topology import provision
from shared.settings import KefuSettings
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


async def test_a_removed_key_is_gone_at_once_for_readers_and_watchers_and_leaves_no_marker(js) -> None:
    kv = await js.key_value(s.BUCKET_WAITING)  # provisioned by the fixture, as by every service
    watcher = await kv.watchall()
    assert await watcher.updates(timeout=5) is None  # the initial (empty) state is delivered
    await kv.put("req_a", b"{}")
    await kv.put("req_b", b"{}")
    await remove(kv, "req_a", marker_ttl=1)
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("req_a")
    seen = [await watcher.updates(timeout=5) for _ in range(3)]
    assert [(e.key, e.operation) for e in seen] == [("req_a", None), ("req_b", None), ("req_a", "PURGE")]
    await watcher.stop()

    async def marker_expired() -> bool:
        return await list_keys(kv) == ["req_b"]

    await wait_until(marker_expired, what="the removal marker to expire")


async def test_a_removal_checked_against_a_revision_refuses_a_newer_value(js) -> None:
    kv = await js.key_value(s.BUCKET_OUTBOX)
    first = await kv.put("req_c", b"1")
    await kv.put("req_c", b"2")  # a newer change marked the key meanwhile
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
        await remove(kv, "req_c", last=first)
    assert (await kv.get("req_c")).value == b"2"


async def test_provisioning_brings_an_older_bucket_in_line(nats_server) -> None:
    """Markers that expire; direct gets for intake's buckets only (which its KV objects then use)."""
    import nats

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        # a bucket as older nats-py versions made it: no per-message TTLs
        await js.add_stream(StreamConfig(name=f"KV_{s.BUCKET_OUTBOX}", subjects=[f"$KV.{s.BUCKET_OUTBOX}.>"],
                                         storage=StorageType.FILE, allow_rollup_hdrs=True, deny_delete=True,
                                         max_msgs_per_subject=1, allow_direct=False))
        assert not (await js.stream_info(f"KV_{s.BUCKET_OUTBOX}")).config.allow_msg_ttl
        # and one of intake's, made before its reads were direct gets
        await js.add_stream(StreamConfig(name=f"KV_{s.BUCKET_CONTACTS}", subjects=[f"$KV.{s.BUCKET_CONTACTS}.>"],
                                         storage=StorageType.FILE, allow_rollup_hdrs=True, deny_delete=True,
                                         max_msgs_per_subject=1, allow_direct=False))
        await provision(js, KefuSettings())
        config = (await js.stream_info(f"KV_{s.BUCKET_OUTBOX}")).config
        assert config.allow_msg_ttl and not config.allow_direct  # routing reads its own writes: leader-served
        contacts = await js.key_value(s.BUCKET_CONTACTS)
        assert contacts._direct  # noqa: SLF001 - intake's reads are direct gets
        kv = await js.key_value(s.BUCKET_OUTBOX)
        await kv.put("req_d", b"1")
        await remove(kv, "req_d", marker_ttl=1)
        await wait_until(lambda: _no_keys(kv), what="the removal marker to expire")
    finally:
        await nc.close()


async def _no_keys(kv) -> bool:
    return await list_keys(kv) == []


async def test_routing_removes_an_outbox_marker_for_good_within_seconds(js) -> None:
    """Nothing watches the outbox, so routing keeps a marker's removal one second, not a minute:
    the reconcile pass lists the bucket, and a minute of removals at 250 changes/s was 15,000
    messages per pass (found by `make soak`)."""
    from services.routing.store import RoutingStore

    outbox = await js.key_value(s.BUCKET_OUTBOX)
    store = RoutingStore(requests=await js.key_value(s.BUCKET_REQUESTS), agents=await js.key_value(s.BUCKET_AGENTS),
                         waiting=await js.key_value(s.BUCKET_WAITING), pending=await js.key_value(s.BUCKET_PENDING),
                         outbox=outbox)
    await store.mark_outbox("req_e", 3)
    await store.mark_outbox("req_f", 5)
    await store.unmark_outbox("req_e", 3)
    assert await store.outbox_ids() == ["req_f"]
    await wait_until(lambda: _keys_are(outbox, ["req_f"]), timeout=10, what="the removal marker to expire")
    await store.mark_outbox_if_absent("req_e")  # a later failed flush marks it again
    await store.mark_outbox_if_absent("req_f")  # and keeps a marker that is there
    assert [(await outbox.get(k)).value for k in ("req_e", "req_f")] == [b"0", b"5"]


async def _keys_are(kv, keys: list[str]) -> bool:
    return await list_keys(kv) == keys
