"""Services as real processes under load: SIGTERM loses and duplicates nothing; two processes of a
service share the work without duplicates."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import nats
import pytest

from devtools.natsserver import free_port
from devtools.payloads import payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.nats.topology import provision
from shared.settings import KefuSettings
from tests.support.logscan import log_dir
from tests.support.services import ADMIN_TOKEN, SURVEY_SECRET, publish_retrying, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
COUNT = 600


class Service:
    def __init__(self, name: str, nats_url: str, log_dir: Path, **env_extra: str) -> None:
        self.name, self.port = name, free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")} | {
            "KEFU_NATS_URL": nats_url, "KEFU_ADMIN_TOKEN": ADMIN_TOKEN, "KEFU_FEEDBACK_SURVEY_SECRET": SURVEY_SECRET,
            f"KEFU_{name.upper()}_HTTP_PORT": str(self.port), "KEFU_LOG_LEVEL": "INFO",
        } | env_extra
        self.log = log_dir / f"{name}-{self.port}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

    async def ready(self) -> None:
        async def ok() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ok, timeout=60, what=f"{self.name} ready")

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def load(js, count: int, tag: str) -> None:
    channels = [Channel.sms, Channel.app, Channel.web, Channel.wechat]
    await asyncio.gather(*(
        js.publish(s.intake_subject(channels[i % 4]), payload(channels[i % 4], f"{tag}-{i}", contact=f"1390{i:07d}"))
        for i in range(count)))


async def collect(nats_url: str, subject: str, count: int = COUNT,
                  bodies: list[dict] | None = None) -> tuple[list[str], asyncio.Event, object]:
    """Request ids of every event stored in KEFU_EVENTS on `subject` (an ordered JetStream consumer:
    a core subscription would also see re-publishes that the stream's duplicate window dropped)."""
    nc = await nats.connect(nats_url)
    seen: list[str] = []
    done = asyncio.Event()

    async def on(msg) -> None:
        body = json.loads(msg.data)
        seen.append(body["request_id"])
        if bodies is not None:
            bodies.append(body)
        if len(set(seen)) >= count:
            done.set()

    await nc.jetstream().subscribe(subject, cb=on, ordered_consumer=True, stream=s.STREAM_EVENTS)
    return seen, done, nc


async def test_sigterm_under_load_loses_and_duplicates_nothing(nats_server, tmp_path) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await provision(js, KefuSettings())
    assigned, done, sub_nc = await collect(nats_server.url, s.REQUEST_ASSIGNED)
    services = [Service("intake", nats_server.url, log_dir()), Service("routing", nats_server.url, log_dir())]
    try:
        for svc in services:
            await svc.ready()
        await load(js, COUNT, "SIGTERM")
        await wait_until(lambda: len(assigned) >= COUNT // 5, what="the load under way")
        codes = [svc.terminate() for svc in services]  # mid-load: in-flight work must finish and be acked
        logs = [svc.log.read_text() for svc in services]
        services = [Service("intake", nats_server.url, log_dir()), Service("routing", nats_server.url, log_dir())]
        await asyncio.wait_for(done.wait(), 120)
        received = (await js.stream_info(s.STREAM_EVENTS, subjects_filter=s.REQUEST_RECEIVED)).state
        dlq = (await js.stream_info(s.STREAM_DLQ)).state.messages
    finally:
        for svc in services:
            svc.kill()
        await sub_nc.close()
        await nc.close()
    # uvicorn re-raises the SIGTERM it handled once shutdown is done: exit status 143 / -15
    assert all(code in (0, -signal.SIGTERM) for code in codes), codes
    assert all('"service stopped"' in log and "Traceback" not in log for log in logs), logs
    assert len(set(assigned)) == COUNT and len(assigned) == COUNT, Counter(assigned).most_common(3)
    assert dlq == 0
    assert received.messages >= COUNT


async def test_two_processes_of_each_service_share_the_work_without_duplicates(nats_server, tmp_path) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await provision(js, KefuSettings())
    assigned, done, sub_nc = await collect(nats_server.url, s.REQUEST_ASSIGNED)
    received, _, sub_nc2 = await collect(nats_server.url, s.REQUEST_RECEIVED)
    surveys, _, sub_nc3 = await collect(nats_server.url, s.SURVEY_SENT)
    procs = {name: [Service(name, nats_server.url, log_dir()) for _ in range(2)]
             for name in ("intake", "routing", "feedback", "metrics")}
    everything = [svc for group in procs.values() for svc in group]
    try:
        for svc in everything:
            await svc.ready()
        await load(js, COUNT, "SCALE")
        await asyncio.wait_for(done.wait(), 120)
        resolve = sorted(set(assigned))[:20]
        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
            for i, rid in enumerate(resolve):  # alternate between the two routing processes
                port = procs["routing"][i % 2].port
                resp = await http.post(f"http://127.0.0.1:{port}/v1/requests/{rid}/resolve",
                                       json={"resolution": "ok"})
                assert resp.status_code == 200, resp.text
        await wait_until(lambda: len(set(surveys)) >= len(resolve), what="a survey per resolution")
        per_intake = [await svc.metric("kefu_intake_payloads_total") for svc in procs["intake"]]
        per_routing = [await svc.metric("kefu_routing_decisions_total") for svc in procs["routing"]]

        async def counted(svc: Service) -> float | None:
            n = await svc.metric("kefu_requests_received_total")
            return n if n == COUNT else None

        per_metrics = [await wait_until(lambda svc=svc: counted(svc), what="metrics caught up")
                       for svc in procs["metrics"]]
    finally:
        for svc in everything:
            svc.kill()
        for conn in (sub_nc, sub_nc2, sub_nc3, nc):
            await conn.close()
    assert len(assigned) == len(set(assigned)) == COUNT
    assert len(received) == len(set(received)) == COUNT
    assert sum(per_intake) == COUNT and all(n > 0 for n in per_intake), per_intake
    assert sum(per_routing) == COUNT and all(n > 0 for n in per_routing), per_routing
    assert len(surveys) == len(set(surveys)) == len(resolve)  # feedback: one survey per resolution
    assert per_metrics == [COUNT, COUNT]  # metrics replicas agree


KILLED = 1000


async def test_kill_9_of_intake_and_routing_at_random_moments_loses_and_duplicates_nothing(nats_server) -> None:
    """1,000 requests from all seven channels; intake and routing are killed with SIGKILL at random
    moments (seeded) while the load is published and worked off, and started again each time."""
    rng = random.Random(20261124)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await provision(js, KefuSettings())
    received_bodies: list[dict] = []
    assigned, done, sub_nc = await collect(nats_server.url, s.REQUEST_ASSIGNED, KILLED)
    received, _, sub_nc2 = await collect(nats_server.url, s.REQUEST_RECEIVED, KILLED, received_bodies)
    # a killed process's unacknowledged messages come back after the ack wait: 5 s instead of 30
    fast = {"KEFU_ACK_WAIT_SECONDS": "5"}
    running = {name: Service(name, nats_server.url, log_dir(), **fast) for name in ("intake", "routing")}
    kills: list[str] = []
    sources = {(channel.value, f"K9-{i}") for i, channel in
               ((i, list(Channel)[i % len(Channel)]) for i in range(KILLED))}

    async def adapters() -> None:  # as adapters do: JetStream publish with Nats-Msg-Id, retried until acked
        channels = list(Channel)
        for start in range(0, KILLED, 50):
            await asyncio.gather(*(
                publish_retrying(js, s.intake_subject(channels[i % len(channels)]),
                                 payload(channels[i % len(channels)], f"K9-{i}", contact=f"1391{i:07d}"),
                                 msg_id=f"K9-{i}")
                for i in range(start, min(start + 50, KILLED))))
            await asyncio.sleep(0.25)  # pacing: the load arrives over several seconds, not as one burst

    followups = [i for i in range(KILLED) if list(Channel)[i % len(Channel)] in FOLLOWED][:FOLLOWUPS]

    async def customers_write_again() -> None:  # a second message from the same contact: a follow-up
        channels = list(Channel)
        for start in range(0, len(followups), 50):
            await asyncio.gather(*(
                publish_retrying(js, s.intake_subject(channels[i % len(channels)]),
                                 payload(channels[i % len(channels)], f"K9-FU-{i}", contact=f"1391{i:07d}",
                                         text="还有一个问题：什么时候能处理好？"),
                                 msg_id=f"K9-FU-{i}")
                for i in followups[start:start + 50]))
            await asyncio.sleep(0.25)

    async def chaos(rounds: int = 8) -> None:
        for _ in range(rounds):
            await asyncio.sleep(rng.uniform(0.1, 0.8))
            victim = rng.choice(sorted(running))
            running[victim].kill()  # SIGKILL: no shutdown, in-flight messages unacknowledged
            kills.append((victim, len(set(received)), len(set(assigned))))
            running[victim] = Service(victim, nats_server.url, log_dir(), **fast)
            await running[victim].ready()

    try:
        for svc in running.values():
            await svc.ready()
        await asyncio.gather(adapters(), chaos())
        await asyncio.wait_for(done.wait(), 180)
        # then the customers write again, while intake and routing are killed again
        await asyncio.gather(customers_write_again(), chaos(4))
        wrote = await wait_until(lambda: _all_stored(js, s.REQUEST_CUSTOMER_WROTE, len(followups)), timeout=180,
                                 what="every follow-up appended by routing")
        messages = await stored(js, s.REQUEST_MESSAGE)
        per_subject = (await js.stream_info(s.STREAM_EVENTS, subjects_filter="kefu.events.request.*")).state.subjects
        received_count, assigned_count = per_subject[s.REQUEST_RECEIVED], per_subject[s.REQUEST_ASSIGNED]
        dlq = (await js.stream_info(s.STREAM_DLQ)).state.messages
    finally:
        for svc in running.values():
            svc.kill()
        for conn in (sub_nc, sub_nc2, nc):
            await conn.close()
    # both services were killed while requests were still being received and assigned
    mid_load = {victim for victim, got, routed in kills if got < KILLED or routed < KILLED}
    assert mid_load == {"intake", "routing"}, kills
    assert {(b["channel"], b["source_id"]) for b in received_bodies} == sources  # none lost
    assert len(received) == len(set(received)) == received_count == KILLED  # none received twice
    assert len(assigned) == len(set(assigned)) == assigned_count == KILLED  # none assigned twice
    assert set(assigned) == set(received)
    assert dlq == 0
    # every follow-up appended once, to its own contact's request, and none made a request
    first = {(b["channel"], b["source_id"]): b["request_id"] for b in received_bodies}
    assert sorted(m["source_id"] for m in messages) == sorted(f"K9-FU-{i}" for i in followups)
    assert all(m["request_id"] == first[(m["channel"], m["source_id"].replace("FU-", ""))] for m in messages)
    assert len(wrote) == len({w["source_id"] for w in wrote}) == len(followups)


FOLLOWED = (Channel.sms, Channel.wechat, Channel.app)  # threaded by contact by default
FOLLOWUPS = 150


async def _all_stored(js, subject: str, count: int) -> list[dict] | None:
    found = await stored(js, subject)
    return found if len(found) >= count else None


async def stored(js, subject: str) -> list[dict]:
    """Every message on `subject` in KEFU_EVENTS, read afresh (an ordered consumer from the start)."""
    info = await js.stream_info(s.STREAM_EVENTS, subjects_filter=subject)
    expected = (info.state.subjects or {}).get(subject, 0)
    bodies: list[dict] = []
    sub = await js.subscribe(subject, ordered_consumer=True, stream=s.STREAM_EVENTS)
    try:
        while len(bodies) < expected:
            bodies.append(json.loads((await sub.next_msg(timeout=10)).data))
    finally:
        await sub.unsubscribe()
    return bodies


async def test_nats_server_killed_and_restarted_mid_load_stores_each_request_once_and_assigns_all(nats_server) -> None:
    """File storage; the server is killed (SIGKILL) while adapters publish 600 requests and started
    again; adapters retry unacknowledged publishes with the same Nats-Msg-Id."""
    count = 600
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    await provision(js, KefuSettings())
    fast = {"KEFU_ACK_WAIT_SECONDS": "5"}
    running = [Service(name, nats_server.url, log_dir(), **fast) for name in ("intake", "routing")]
    channels = list(Channel)

    async def counts() -> dict[str, int]:
        try:
            info = await js.stream_info(s.STREAM_EVENTS, subjects_filter="kefu.events.request.*")
        except Exception:  # noqa: BLE001 - the server is away: no count this time
            return {}
        return info.state.subjects or {}

    acked: list[int] = []
    at_restart: list[int] = []

    async def publish(i: int) -> None:
        await publish_retrying(js, s.intake_subject(channels[i % len(channels)]),
                               payload(channels[i % len(channels)], f"NR-{i}", contact=f"1392{i:07d}"),
                               msg_id=f"NR-{i}", timeout=120)
        acked.append(i)

    async def adapters() -> None:
        for start in range(0, count, 30):
            await asyncio.gather(*(publish(i) for i in range(start, min(start + 30, count))))
            await asyncio.sleep(0.1)  # pacing: the load arrives over a few seconds

    async def restart_server() -> None:
        await wait_until(lambda: _at_least(counts, s.REQUEST_RECEIVED, count // 4), what="a quarter received")
        at_restart.append(len(acked))
        nats_server.proc.kill()  # SIGKILL: no shutdown of the server
        nats_server.proc.wait()
        nats_server.start()

    try:
        for svc in running:
            await svc.ready()
        await asyncio.gather(adapters(), restart_server())
        await wait_until(lambda: _at_least(counts, s.REQUEST_ASSIGNED, count), timeout=180, what="all assigned")
        received = await stored(js, s.REQUEST_RECEIVED)
        assigned = await stored(js, s.REQUEST_ASSIGNED)
        raw = (await js.stream_info(s.STREAM_INTAKE)).state.messages
    finally:
        for svc in running:
            svc.kill()
        await nc.close()
    assert 0 < at_restart[0] < count  # killed while adapters were publishing
    assert raw == count  # every adapter publish stored once, retries included
    assert sorted(b["source_id"] for b in received) == sorted(f"NR-{i}" for i in range(count))
    assert len({b["request_id"] for b in received}) == len(received) == count
    assert sorted(b["request_id"] for b in assigned) == sorted(b["request_id"] for b in received)


async def _at_least(counts, subject: str, n: int) -> bool:
    return (await counts()).get(subject, 0) >= n
