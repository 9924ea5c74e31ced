"""The bare nats-py pipelines the benchmark compares kefu with, with no business logic.

The issue's ceiling, the same hops:

    driver --publish--> BENCH.a --worker--> BENCH.b --worker--> BENCH.c --> driver

Each worker is a process with a durable pull consumer, fetching in batches, publishing the next
hop to JetStream with its ack awaited (and Nats-Msg-Id set), then acking, as kefu's services do.

And the same JetStream operations as a kefu request makes (counted on the bus: see
docs/performance.md), in the order and with the concurrency kefu makes them (a fetched batch's
messages handled at once, as under FastStream), with payloads of kefu's sizes but no parsing,
judging or models:

    driver --> benchops.in --intake-ops--> benchops.events.received --routing-ops--> benchops.events.assigned --> driver

in streams laid out as kefu's (intake, events, outbound, timers). intake-ops: two KV reads at once
(dedup, contact directory; direct gets), publish, KV put (the source seen), ack. routing-ops: KV
create (the record); at once: publish the decision, KV create (the daily cap) then publish the
receipt, two KV puts (queue, pending index), publish the timer; KV update with the revision (the
record's outbox cleared); ack.

bare kefu-ops on kefu's consumer: the same two workers, consuming through kefu's own
`durable_subscriber` (FastStream) instead of a nats-py fetch loop; nothing else differs.

bare kefu-ops on kefu's platform: that, and the operations made through kefu's JetStream context,
publisher and `together`, as the services make them.

bare kefu-ops with kefu's core: the nats-py loop and the same operations, with kefu's core run on
each message (native payloads in, the core's events and records written).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import KeyNotFoundError

STREAM = "BENCH"
SUBJECTS = ["bench.a", "bench.b", "bench.c"]


async def setup(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await js.delete_stream(STREAM)
    except Exception:  # noqa: BLE001 - absent from a fresh server: nothing to delete
        pass
    await js.add_stream(StreamConfig(name=STREAM, subjects=["bench.>"], storage=StorageType.FILE,
                                     duplicate_window=120.0))
    await nc.close()


async def worker(url: str, source: str, target: str, batch: int = 32) -> None:
    nc = await nats.connect(url, name=f"worker-{source}")
    js = nc.jetstream()
    durable = source.replace(".", "_")
    sub = await js.pull_subscribe(source, durable=durable, stream=STREAM,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000))

    async def forward(msg: Msg) -> None:
        await js.publish(target, msg.data, headers={"Nats-Msg-Id": f"{target}:{msg.metadata.sequence.stream}"})
        await msg.ack()

    await consume(sub, forward, batch=batch, concurrently=False)


async def consume(sub: Any, handle: Callable[[Msg], Awaitable[None]], *, batch: int, concurrently: bool) -> None:
    """Fetch batches for ever; handle a batch's messages one after another, or all at once (as
    FastStream's pull subscriber, under kefu's services, runs a fetched batch in a task group)."""
    while True:
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except (nats.errors.TimeoutError, TimeoutError):
            continue
        if concurrently:
            await asyncio.gather(*(handle(msg) for msg in msgs))
        else:
            for msg in msgs:
                await handle(msg)


OPS_STREAMS = {"BENCHOPS_IN": "benchops.in", "BENCHOPS_EVENTS": "benchops.events.>",
               "BENCHOPS_OUTBOUND": "benchops.outbound", "BENCHOPS_TIMERS": "benchops.timers"}  # as kefu's streams
OPS_BUCKETS = {"ops_sources": True, "ops_contacts": True, "ops_requests": False, "ops_waiting": False,
               "ops_caps": False}  # bucket: direct gets (intake's buckets have them, as in kefu)


def pad(key: bytes, size: int) -> bytes:
    return key + b" " + b"x" * max(0, size - len(key) - 1)


async def setup_ops(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for name in (*OPS_STREAMS, *(f"KV_{b}" for b in OPS_BUCKETS)):
        try:
            await js.delete_stream(name)
        except Exception:  # noqa: BLE001 - absent from a fresh server: nothing to delete
            pass
    for name, subject in OPS_STREAMS.items():
        await js.add_stream(StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE,
                                         duplicate_window=120.0))
    for bucket, direct in OPS_BUCKETS.items():
        await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE, direct=direct))
    await nc.close()


async def ops_worker(url: str, role: str, batch: int = 32, *, consumer: str = "bare") -> None:
    """One of the two kefu-ops workers. `consumer="bare"`: a nats-py fetch loop (the floor);
    `consumer="kefu"`: the same operations, consumed the way kefu's services consume, through
    `durable_subscriber` (FastStream's pull subscriber and kefu's consume path, on the broker's
    connection) -- the difference between the two is the consumer path's price in the pipeline;
    `consumer="platform"`: that, and every operation through kefu's platform as the services make
    it (`AckingJetStream` with plain header parsing, `Publisher` with its contract check and
    counters, `together`) -- the platform's whole price for the floor's operations;
    `consumer="core"`: the nats-py loop and the floor's operations, with kefu's core run on each
    message (`bench_core.Core`: the payload a native one, the events and records the core's, so
    of kefu's sizes) -- the floor as one program, to show whether core and operations cost more
    together than apart."""
    broker: Any = None
    publisher: Any = None
    gather: Callable[..., Awaitable[Any]] = asyncio.gather
    if consumer in ("kefu", "platform"):
        from shared.nats.client import tune_nats_client
        from shared.nats.consume import durable_subscriber
        from shared.runtime import make_runtime, settle_garbage_collector
        from shared.settings import KefuSettings

        tune_nats_client()
        settings = KefuSettings(nats_url=url, service_name=f"ops-{role}")
        runtime = make_runtime(settings, consumer=f"ops-{role}")
        broker = runtime.broker
        await broker.connect()
        nc = broker.connection
    else:
        nc = await nats.connect(url, name=f"{role}-ops")
    js = nc.jetstream()
    if consumer == "platform":
        from shared.nats.client import AckingJetStream, plain_header_parsing
        from shared.nats.publish import Contract, Publisher, together

        js = plain_header_parsing(await AckingJetStream.open(nc))
        publisher = Publisher(js, metrics=runtime.pipeline, contract=Contract([]))
        gather = together
    core: Any = None
    if consumer == "core":
        from devtools.bench_core import Core
        from shared.runtime import settle_garbage_collector

        core = Core()
        settle_garbage_collector()  # the collector as kefu's services have it: the best case for one program
    kv = {b: await js.key_value(b) for b in OPS_BUCKETS}
    source, stream = ("benchops.in", "BENCHOPS_IN") if role == "intake" else ("benchops.events.received", "BENCHOPS_EVENTS")

    async def missing(bucket: str, key: str) -> None:
        try:
            await kv[bucket].get(key)
        except KeyNotFoundError:
            pass

    async def publish(subject: str, data: bytes, msg_id: str) -> None:
        if publisher is not None:
            await publisher.raw(subject, data, msg_id=msg_id)
        else:
            await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})

    async def receipt(key: str, data: bytes) -> None:
        await kv["ops_caps"].create(f"cap-{key}", b"c" * 58)
        await publish("benchops.outbound", data, f"outbound:{key}")

    async def intake_ops(key: bytes, received: bytes) -> None:
        name = key.decode()
        await gather(missing("ops_sources", name), missing("ops_contacts", name))
        await publish("benchops.events.received", received, f"received:{name}")
        await kv["ops_sources"].put(name, b"s" * 30)

    async def routing_ops(key: bytes, created: bytes, cleared: bytes, assigned: bytes, receipt_body: bytes) -> None:
        name = key.decode()
        revision = await kv["ops_requests"].create(name, created)
        await gather(publish("benchops.events.assigned", assigned, f"assigned:{name}"),
                     receipt(name, receipt_body),
                     kv["ops_waiting"].put(f"q-{name}", b"w" * 272),
                     kv["ops_waiting"].put(f"p-{name}", b"w" * 272),
                     publish("benchops.timers", pad(key, 172), f"timer:{name}"))
        await kv["ops_requests"].update(name, cleared, last=revision)

    async def intake(data: bytes) -> None:
        key = data.split(b" ", 1)[0]
        await intake_ops(key, pad(key, 656))

    async def routing(data: bytes) -> None:
        key = data.split(b" ", 1)[0]
        await routing_ops(key, b"r" * 3094, b"r" * 3094, pad(key, 601), pad(key, 430))

    async def intake_core(data: bytes) -> None:  # the native payload parsed, before the reads, as kefu does
        key, channel, raw = data.split(b" ", 2)
        await intake_ops(key, key + b" " + core.received(channel.decode(), raw))

    async def routing_core(data: bytes) -> None:
        key, received = data.split(b" ", 1)
        created, cleared, events = core.routed(received)
        await routing_ops(key, created, cleared, key + b" " + events[0], events[-1])

    if core is not None:
        work = intake_core if role == "intake" else routing_core
    else:
        work = intake if role == "intake" else routing

    if broker is not None:
        @durable_subscriber(broker, runtime.consuming, subject=source, stream=stream, durable=f"ops-{role}",
                            description="bench", batch_size=batch)
        async def handler(body: bytes) -> None:
            await work(body)

        await broker.start()
        settle_garbage_collector()  # as kefu's services do once started
        await asyncio.Event().wait()  # until the bench stops the process
        return

    sub = await js.pull_subscribe(source, durable=f"ops-{role}", stream=stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000))

    async def handle(msg: Msg) -> None:
        await work(msg.data)
        await msg.ack()

    await consume(sub, handle, batch=batch, concurrently=True)


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """On the event loop kefu's services run on (uvloop where installed), so that the ceiling is fair."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    command, url = sys.argv[1], sys.argv[2]
    if command == "setup":
        run(setup(url))
    elif command == "setup-ops":
        run(setup_ops(url))
    elif command == "ops-worker":
        run(ops_worker(url, sys.argv[3]))
    elif command == "ops-worker-kefu":  # the same operations through kefu's consumer path
        run(ops_worker(url, sys.argv[3], consumer="kefu"))
    elif command == "ops-worker-platform":  # and through kefu's publisher and JetStream context
        run(ops_worker(url, sys.argv[3], consumer="platform"))
    elif command == "ops-worker-core":  # the floor as one program: kefu's core between the operations
        run(ops_worker(url, sys.argv[3], consumer="core"))
    else:
        run(worker(url, sys.argv[3], sys.argv[4]))


if __name__ == "__main__":
    main()
