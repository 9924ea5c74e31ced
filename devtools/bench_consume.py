"""CPU per consumed message: kefu's `durable_subscriber` (FastStream fetches, kefu's consume path
handles each message), FastStream's own per-message path, and a bare nats-py fetch-and-ack loop,
same stream, no-op handler.

    python -m devtools.bench_consume [N]

Each variant consumes N messages (default 6,000) from a stream filled beforehand; the figure is the
client process's CPU per message (the server's is printed too). What it shows (docs/performance.md):
the per-message cost of the consumer path itself, which intake and routing each pay once per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from devtools.bench import cpu_seconds
from devtools.natsserver import NatsServer


async def fill(js: JetStreamContext, subject: str, count: int) -> None:
    for start in range(0, count, 256):
        await asyncio.gather(*(js.publish(subject, b'{"x": 1}' + b" " * 600) for _ in range(min(256, count - start))))


async def bare(url: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe("c.bare", durable="bare")
    done = 0
    while done < count:
        msgs = await sub.fetch(32, timeout=1)
        for msg in msgs:
            await msg.ack()
        done += len(msgs)
    await nc.close()


async def kefu(url: str, count: int, *, kefu_path: bool, faststream_metrics: bool = False) -> None:
    """`kefu_path`: kefu's `durable_subscriber` (FastStream fetches, kefu's consume path handles each
    message); otherwise FastStream's own per-message path with the same consumer settings (what
    kefu ran until 2026-12-05), optionally with FastStream's Prometheus middleware."""
    from faststream import AckPolicy
    from faststream.nats import JStream, NatsBroker, PullSub

    from shared.nats.consume import durable_subscriber
    from shared.nats.topology import broker_kwargs
    from shared.runtime import make_runtime
    from shared.settings import KefuSettings

    settings = KefuSettings(nats_url=url, service_name="bench")
    done = asyncio.Event()
    seen = 0

    async def handler(body: bytes) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    if kefu_path:
        runtime = make_runtime(settings, consumer="kefu")
        broker = runtime.broker
        durable_subscriber(broker, runtime.consuming, subject="c.kefu", stream="CONSUME", durable="kefu",
                           description="bench")(handler)
    else:
        middlewares: list[Any] = []
        if faststream_metrics:
            from faststream.nats.prometheus import NatsPrometheusMiddleware
            from prometheus_client import CollectorRegistry

            middlewares.append(NatsPrometheusMiddleware(registry=CollectorRegistry(), app_name="bench"))
        broker = NatsBroker(**broker_kwargs(settings), apply_types=False, log_level=logging.DEBUG,
                            middlewares=middlewares)
        broker.subscriber("c.kefu", stream=JStream("CONSUME", declare=False), durable="kefu",
                          pull_sub=PullSub(batch_size=32, timeout=1.0), ack_policy=AckPolicy.NACK_ON_ERROR)(handler)
    await broker.start()
    await done.wait()
    await broker.stop()


async def main(count: int) -> None:
    logging.disable(logging.CRITICAL)
    server = NatsServer(Path(tempfile.mkdtemp(prefix="kefu-bench-consume-"))).start()
    assert server.proc is not None
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="CONSUME", subjects=["c.>"], storage=StorageType.FILE))
        print(f"{'consumer':48} {'client us/msg':>14} {'server us/msg':>14}")
        for name, run in (("bare nats-py fetch + ack loop", lambda: bare(server.url, count)),
                          ("FastStream's per-message path", lambda: kefu(server.url, count, kefu_path=False)),
                          ("FastStream's path + its PrometheusMiddleware", lambda: kefu(server.url, count, kefu_path=False,
                                                                                       faststream_metrics=True)),
                          ("kefu durable_subscriber (kefu's consume path)", lambda: kefu(server.url, count, kefu_path=True))):
            subject = "c.bare" if name.startswith("bare") else "c.kefu"
            await js.purge_stream("CONSUME")
            for durable in ("bare", "kefu"):
                try:
                    await js.delete_consumer("CONSUME", durable)
                except nats.js.errors.NotFoundError:
                    pass
            await fill(js, subject, count)
            server_cpu, client_cpu = cpu_seconds(server.proc.pid), cpu_seconds(os.getpid())
            await run()
            client = (cpu_seconds(os.getpid()) - client_cpu) / count * 1e6
            srv = (cpu_seconds(server.proc.pid) - server_cpu) / count * 1e6
            print(f"{name:48} {client:14.0f} {srv:14.0f}")
        await nc.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 6000))
