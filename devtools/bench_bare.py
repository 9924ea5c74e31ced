"""The bare nats-py pipeline the benchmark compares kefu with: the same hops, no business logic.

    driver --publish--> BENCH.a --worker--> BENCH.b --worker--> BENCH.c --> driver

Each worker is a process with a durable pull consumer, fetching in batches, publishing the next
hop to JetStream with its ack awaited (and Nats-Msg-Id set), then acking, as kefu's services do.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

STREAM = "BENCH"
SUBJECTS = ["bench.a", "bench.b", "bench.c"]


async def setup(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await js.delete_stream(STREAM)
    except Exception:
        pass
    await js.add_stream(StreamConfig(name=STREAM, subjects=["bench.>"], storage=StorageType.FILE,
                                     duplicate_window=120.0))
    await nc.close()


async def worker(url: str, source: str, target: str, batch: int = 32) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    durable = source.replace(".", "_")
    sub = await js.pull_subscribe(source, durable=durable, stream=STREAM,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000))
    while True:
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except (nats.errors.TimeoutError, TimeoutError):
            continue
        for msg in msgs:
            await js.publish(target, msg.data, headers={"Nats-Msg-Id": f"{target}:{msg.metadata.sequence.stream}"})
            await msg.ack()


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
    else:
        run(worker(url, sys.argv[3], sys.argv[4]))


if __name__ == "__main__":
    main()
