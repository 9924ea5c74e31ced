"""CPU per JetStream operation, client and nats-server, one at a time against several in flight.

    python -m devtools.bench_ops [N] [--acking]

For each kind of operation a kefu request makes (a publish with Nats-Msg-Id, a KV put, a KV create
of a record's size, a KV read as a direct get and as a leader-served get), N operations (default
3,000) issued one after another and then 8 at a time, from one client (nats-py's JetStreamContext,
or kefu's AckingJetStream with --acking) against the bundled nats-server on a fresh store. What it
shows (docs/performance.md): most of an operation's cost is the wake-up and the round trip, which
operations in flight together share.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import KeyNotFoundError

from devtools.bench import cpu_seconds
from devtools.bench_bare import run
from devtools.natsserver import NatsServer
from shared.nats.client import AckingJetStream


async def main(count: int, acking: bool) -> None:
    server = NatsServer(Path(tempfile.mkdtemp(prefix="kefu-bench-ops-"))).start()
    assert server.proc is not None
    try:
        nc = await nats.connect(server.url)
        js = await AckingJetStream.open(nc) if acking else nc.jetstream()
        await js.add_stream(StreamConfig(name="OPS", subjects=["ops.>"], storage=StorageType.FILE, duplicate_window=120))
        direct = await js.create_key_value(KeyValueConfig(bucket="ops_direct", history=1, storage=StorageType.FILE,
                                                          direct=True))
        leader = await js.create_key_value(KeyValueConfig(bucket="ops_leader", history=1, storage=StorageType.FILE))

        async def missing(kv: Any, key: str) -> None:
            try:
                await kv.get(key)
            except KeyNotFoundError:
                pass

        kinds: dict[str, Callable[[str], Awaitable[object]]] = {
            "publish, Nats-Msg-Id, 600 B": lambda k: js.publish("ops.x", b"x" * 600, headers={"Nats-Msg-Id": k}),
            "KV put, 272 B": lambda k: leader.put(f"p{k}", b"x" * 272),
            "KV create, 3 KB": lambda k: leader.create(f"c{k}", b"x" * 3000),
            "KV get (direct), missing": lambda k: missing(direct, k),
            "KV get (leader), missing": lambda k: missing(leader, k),
        }
        print(f"{'operation':28} {'in flight':>9} {'server us':>10} {'client us':>10}")
        for name, operation in kinds.items():
            for in_flight in (1, 8):
                server_cpu, client_cpu = cpu_seconds(server.proc.pid), cpu_seconds(os.getpid())
                for start in range(0, count, in_flight):
                    await asyncio.gather(*(operation(f"{in_flight}-{start + i}") for i in range(in_flight)))
                print(f"{name:28} {in_flight:>9} {1e6 * (cpu_seconds(server.proc.pid) - server_cpu) / count:>10.1f} "
                      f"{1e6 * (cpu_seconds(os.getpid()) - client_cpu) / count:>10.1f}")
        await nc.close()
    finally:
        server.stop()


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    run(main(int(numbers[0]) if numbers else 3000, "--acking" in sys.argv))
