"""The shipped deployment, run: deploy/nats's three node configs as a real JetStream cluster on
loopback, provisioned by the admin user, the four services and the console with their own users and R3 streams
(as compose.yaml starts them), and requests pushed through while each node in turn is killed and
restarted. Nothing may be lost or duplicated, and every stream and bucket ends R3 and current.

A Docker engine would run compose.yaml itself; the machines that test kefu have none, so this runs
the same topology as processes (tests/support/topology.py says what is rewritten, and why)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest
from nats.js.api import DeliverPolicy

from devtools.payloads import payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.secured import password
from tests.support.services import publish_retrying, wait_until
from tests.support.topology import SECRETS, Topology

pytestmark = pytest.mark.e2e
PER_PHASE = 80  # requests pushed before the kills, and while each node is down
CHANNELS = (Channel.sms, Channel.app, Channel.web, Channel.wechat)


def test_a_docker_engine_is_absent_so_the_topology_runs_as_processes() -> None:
    """Says which of the two ways this suite checks deploy/compose on this machine."""
    docker = shutil.which("docker")
    engine = docker is not None and subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0
    print("docker engine:", "present" if engine else "absent: compose.yaml's topology runs as processes "
          "(test_shipped_cluster_loses_and_duplicates_nothing_while_nodes_die)")
    assert not engine, "a Docker engine is here: add `docker compose up` of deploy/compose to this suite"


@pytest.fixture
def topology(tmp_path: Path):
    topo = Topology(tmp_path)
    try:
        yield topo
    finally:
        topo.stop()
        logs = {n.name: n.log.read_text() for n in topo.nodes.values() if n.log.exists()}
        for name, text in logs.items():  # routes authenticate: the shipped configs' first failure
            assert "Authorization Violation" not in text, (name, text[-2000:])


async def cluster_formed(topo: Topology) -> bool:
    try:
        for node in topo.nodes.values():
            if node.monitoring("/routez")["num_routes"] < 2:
                return False
            meta = node.monitoring("/jsz").get("meta_cluster") or {}
            if not meta.get("leader") or meta.get("cluster_size") != 3:
                return False
    except OSError:
        return False
    return True


async def services_ready(topo: Topology) -> bool:
    async with httpx.AsyncClient(timeout=2) as http:
        for svc in topo.services.values():
            try:
                if (await http.get(f"http://127.0.0.1:{svc.port}/readyz")).status_code != 200:
                    return False
            except httpx.TransportError:
                return False
    return True


async def push(adapters: dict, tag: str, count: int) -> list[str]:
    """Each channel's payloads from that channel's own adapter user."""
    sources = [f"{tag}-{i}" for i in range(count)]
    await asyncio.gather(*(
        publish_retrying(adapters[CHANNELS[i % 4]].jetstream(), s.intake_subject(CHANNELS[i % 4]),
                         payload(CHANNELS[i % 4], source, contact=f"1391{hash(source) % 10**7:07d}"),
                         msg_id=f"{CHANNELS[i % 4].value}:{source}", timeout=60)
        for i, source in enumerate(sources)))
    return sources


async def stored(js, subject: str) -> int:
    info = await js.stream_info(s.STREAM_EVENTS, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def events_of(js, subject: str) -> list[dict]:
    """Every event stored on `subject`, read once from the stream (admin, ordered consumer)."""
    total = await stored(js, subject)
    bodies: list[dict] = []
    if total:
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
                                 stream=s.STREAM_EVENTS)
        while len(bodies) < total:
            bodies.append(json.loads((await sub.next_msg(timeout=10)).data))
        await sub.unsubscribe()
    return bodies


async def replicated_and_current(js) -> list[str]:
    """Streams (KV buckets are streams) that are not R3 with a leader and two current replicas."""
    behind = []
    async for info in streams(js):
        cluster = info.cluster
        replicas = cluster.replicas if cluster and cluster.replicas else []
        if (info.config.num_replicas != 3 or not cluster or not cluster.leader or len(replicas) != 2
                or not all(r.current and not r.offline for r in replicas)):
            behind.append(info.config.name)
    return behind


async def streams(js):
    for info in await js.streams_info():
        yield info


async def test_shipped_cluster_loses_and_duplicates_nothing_while_nodes_die(topology: Topology) -> None:
    topo = topology
    topo.start_nodes()
    await wait_until(lambda: cluster_formed(topo), timeout=60, what="routes and a JetStream meta leader")
    provisioned = topo.provision()
    assert provisioned.returncode == 0, provisioned.stderr[-3000:]
    topo.start_services()
    await wait_until(lambda: services_ready(topo), timeout=90, what="the services and the console ready")

    urls = [n.url for n in topo.nodes.values()]
    adapters = {channel: await nats.connect(urls, user=f"adapter-{channel.value}",
                                            password=password(f"adapter-{channel.value}"),
                                            inbox_prefix=f"_INBOX_adapter-{channel.value}".encode(),
                                            max_reconnect_attempts=-1, reconnect_time_wait=0.2)
                for channel in CHANNELS}
    admin = await nats.connect(urls, user="admin", password=password("admin"), max_reconnect_attempts=-1,
                               reconnect_time_wait=0.2)
    try:
        sources = await push(adapters, "before", PER_PHASE)
        for name, node in topo.nodes.items():
            node.kill()
            sources += await push(adapters, f"without-{name}", PER_PHASE)
            node.start()
            await wait_until(node.healthy, timeout=120, what=f"{name} back and current")

        js = admin.jetstream()

        async def all_assigned() -> bool:
            return await answered(stored(js, s.REQUEST_ASSIGNED)) >= len(sources)

        await wait_until(all_assigned, timeout=180, what=f"{len(sources)} requests assigned")
        await wait_until(lambda: all(n.healthy() for n in topo.nodes.values()), timeout=120, what="all nodes current")
        received = Counter(e["source_id"] for e in await events_of(js, s.REQUEST_RECEIVED))
        assigned = Counter(e["request_id"] for e in await events_of(js, s.REQUEST_ASSIGNED))
        behind = await wait_until(lambda: _none_behind(js), timeout=120, what="every stream R3 and current")
        metrics_port = topo.services["metrics"].port

        async def counted() -> float:
            async with httpx.AsyncClient(timeout=5) as http:
                text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("kefu_requests_received_total{"))

        await wait_until(lambda: _equals(counted, len(sources)), timeout=60, what="metrics counted every request")
        console = await console_answers(topo.services["console"].port, SECRETS["KEFU_ADMIN_TOKEN"])
    finally:
        for adapter in adapters.values():
            await adapter.close()
        await admin.close()

    print(f"cluster run: {len(sources)} requests, 3 node kills, {len(sources) - len(received)} lost, "
          f"{sum(received.values()) - len(received)} duplicated received, "
          f"{sum(assigned.values()) - len(assigned)} duplicated assigned")
    assert set(received) == set(sources), set(sources) ^ set(received)  # nothing lost
    assert max(received.values()) == 1 and max(assigned.values()) == 1  # nothing twice
    assert len(assigned) == len(sources)
    assert behind is True
    # the console under its own user: the floor from routing behind it, the log read back from the start
    assert console["floor"] == 200 and console["first"].startswith("id: ")


async def console_answers(port: int, token: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as http:
        floor = (await http.get("/v1/floor")).status_code
        async with http.stream("GET", "/v1/live", headers={"Last-Event-ID": "0"}) as live:
            first = await anext(line async for line in live.aiter_lines() if line.startswith("id:"))
    return {"floor": floor, "first": first}


async def _none_behind(js) -> bool:
    return await answered(replicated_and_current(js), otherwise=["?"]) == []


async def answered(call, otherwise=-1):
    """A JetStream API call while the cluster settles (a node just back, leaders moving) may time
    out or find no responders: not an answer yet."""
    try:
        return await call
    except (nats.errors.Error, TimeoutError):
        return otherwise


async def _equals(read, expected: float) -> bool:
    return await read() == expected
