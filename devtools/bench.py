"""`make bench`: kefu's whole pipeline under load beside a bare nats-py pipeline of the same hops.

kefu:  adapter publish -> intake -> request.received -> routing -> request.assigned (all four
       services run as processes, as `make run` runs them)
bare:  publish -> worker -> publish -> worker -> publish (devtools/bench_bare.py)
bare kefu-ops: two workers making the JetStream operations a kefu request makes (KV reads and
       writes, the extra publishes), with no business logic (devtools/bench_bare.py)
kefu-ops, kefu consumer: the same two workers consuming through kefu's `durable_subscriber`
       (FastStream's pull subscriber, kefu's consume path): the consumer path's price in the pipeline
kefu-ops, kefu platform: that, with every operation made through kefu's platform (AckingJetStream,
       Publisher, together): the platform's price in the pipeline
kefu-ops with the core: the bare workers running kefu's core on each message (native payloads in,
       the core's records and events written): the floor as one program, against the floor's sum
core:  kefu's parse/judge/SLA/record work alone, in this process (devtools/bench_core.py)
judgement: routing's judgement alone over both labelled sets (tests/data), and what jieba's word
       segmentation would cost beside it
routing alone: a backlog of received requests drained by one routing process, then by two

For each: a fixed offered rate (default 300/s for 10 s; for kefu twice, right after the start and
again once warm) and the highest rate it sustains (as many
publishes in flight as it takes), latency per request from the adapter's publish to the last event
(p50/p95/p99/max) and throughput; kefu's services' RSS before and after; CPU per request of every
process, the messages nats-server received per request and the cores kept busy. Prints a table and writes
var/bench/result.json. Uses KEFU_NATS_URL if set, else starts the bundled nats-server on a fresh store.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import nats
import nats.errors
from nats.aio.msg import Msg

from devtools.bench_bare import run
from devtools.bench_core import core_cpu_ms, judgement_costs
from devtools.natsserver import NatsServer, free_port
from devtools.payloads import payload
from services.intake.domain.canonical import request_id_for
from shared.contract.enums import Channel
from shared.contract.subjects import REQUEST_ASSIGNED, REQUEST_RECEIVED, intake_subject

ROOT = Path(__file__).parents[1]
SERVICES = ("intake", "routing", "feedback", "metrics")


@dataclass
class Result:
    name: str
    mode: str
    offered_per_s: float | None
    sent: int
    completed: int
    seconds: float
    throughput_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


async def assigned_in_stream(url: str, keys: set[str], quiet: float = 3.0) -> int:
    """How many of `keys` have a `request.assigned` in KEFU_EVENTS: read from the stream (an ordered
    consumer over the subject) until it has been quiet for `quiet` seconds."""
    nc = await nats.connect(url, name="bench-check")
    found: set[str] = set()
    try:
        sub = await nc.jetstream().subscribe(REQUEST_ASSIGNED, ordered_consumer=True)
        while True:
            try:
                msg = await sub.next_msg(timeout=quiet)
            except nats.errors.TimeoutError:
                break
            found.add(assigned_request_id(msg))
    finally:
        await nc.close()
    return len(found & keys)


async def check_complete(url: str, var: Path, result: Result, items: list[tuple[str, bytes, str]]) -> None:
    """A kefu run that did not answer every request within the driver's wait (rare: once in about
    twenty runs on 2026-12-05, not reproduced): tell a request kefu did not assign (late or lost) from
    an answer the driver missed (its subscription is at-most-once), and keep the services' logs."""
    if result.completed >= result.sent:
        return
    found = await assigned_in_stream(url, {key for _, _, key in items})
    kept = var / f"incomplete-{result.name}-{result.mode}".replace(" ", "-").replace(",", "")
    kept.mkdir(exist_ok=True)
    for log in var.glob("*.log"):
        shutil.copy(log, kept / log.name)
    detail = ("all were assigned: the driver missed answers" if found >= result.sent
              else f"{result.sent - found} not assigned yet: late or lost")
    print(f"INCOMPLETE {result.name} {result.mode}: {result.completed} of {result.sent} answered within the "
          f"driver's wait; {found} have a request.assigned in KEFU_EVENTS ({detail}); the services' logs are "
          f"kept in {kept}", flush=True)


def labelled_texts() -> list[str]:
    """The texts of both labelled sets (tests/data): what the judgement is timed on."""
    data = Path(__file__).parents[1] / "tests" / "data"
    return [json.loads(line)["text"] for name in ("labelled_requests.jsonl", "heldout_requests.jsonl")
            for line in (data / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def drive(url: str, name: str, mode: str, items: list[tuple[str, bytes, str]], done_subject: str,
                key_of, rate: float | None, window: int = 512, timeout: float = 120.0) -> Result:
    nc = await nats.connect(url, name="driver")
    js = nc.jetstream()
    sent_at: dict[str, float] = {}
    latency: dict[str, float] = {}
    finished = asyncio.Event()

    async def on_done(msg) -> None:
        key = key_of(msg)
        if key in sent_at and key not in latency:
            latency[key] = time.perf_counter() - sent_at[key]
            if len(latency) == len(items):
                finished.set()

    sub = await nc.subscribe(done_subject, cb=on_done)
    gate = asyncio.Semaphore(window)
    # the driver is the instrument: a full collection of its own (the payloads, the previous runs'
    # results) paused it 20-40 ms now and then and stamped every answer that came in meanwhile late
    gc.collect()
    gc.freeze()

    async def send(subject: str, data: bytes, key: str) -> None:
        async with gate:
            sent_at[key] = time.perf_counter()
            await js.publish(subject, data, headers={"Nats-Msg-Id": key}, timeout=30)

    start = time.perf_counter()
    tasks = []
    for i, (subject, data, key) in enumerate(items):
        if rate is not None:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(subject, data, key)))
    await asyncio.gather(*tasks)
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    except TimeoutError:
        pass
    elapsed = (max(sent_at[k] + v for k, v in latency.items()) - start) if latency else float("nan")
    await sub.unsubscribe()
    await nc.close()
    ms = [v * 1000 for v in latency.values()]
    return Result(name, mode, rate, len(items), len(latency), round(elapsed, 2),
                  round(len(latency) / elapsed, 1) if latency else 0.0,
                  round(percentile(ms, 0.5), 1), round(percentile(ms, 0.95), 1), round(percentile(ms, 0.99), 1),
                  round(max(ms), 1) if ms else float("nan"))


def assigned_request_id(msg: Msg) -> str:
    """The request a `request.assigned` names, from its Nats-Msg-Id (`assigned:<request>:<version>`),
    as cheap for the driver as bare kefu-ops' key; from the JSON body where there is no header."""
    msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
    return msg_id.split(":")[1] if msg_id.startswith("assigned:") else json.loads(msg.data)["request_id"]


def kefu_items(count: int, run: str) -> list[tuple[str, bytes, str]]:
    """Each request from a customer of its own: another run's customers are others too (the same
    contact writing again within the conversation window would be a follow-up, not a request)."""
    channels = itertools.cycle(list(Channel))
    items = []
    people = zlib.crc32(run.encode()) % 1000  # a thousand runs' worth of distinct numbers
    for i in range(count):
        channel = next(channels)
        source = f"{run}-{i}" if channel is not Channel.email else f"{run}-{i}@bench.example"
        # KEFU_BENCH_WALKIN_ID=0: walk-in forms without an identity number (nothing to mask and erase)
        data = payload(channel, source, contact=f"13{people:03d}{i % 1000000:06d}",
                       id_number=None if os.environ.get("KEFU_BENCH_WALKIN_ID") == "0" else "110105199001011234")
        items.append((intake_subject(channel), data, request_id_for(channel, source)))
    return items


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_messages(server: NatsServer | None) -> tuple[int, int] | None:
    """Messages nats-server has received from clients so far (/varz in_msgs: publishes, KV writes,
    JetStream API requests, acks and pull requests alike) and sent to them (out_msgs: deliveries,
    replies, acks of publishes), when the bench started the server."""
    if server is None or server.monitor_port is None:
        return None
    varz = httpx.get(f"http://127.0.0.1:{server.monitor_port}/varz", timeout=5).json()
    return varz["in_msgs"], varz["out_msgs"]


Traffic = dict[str, tuple[int, int, int, int]]  # connection name -> messages in, out, bytes in, out


def server_traffic(server: NatsServer | None) -> Traffic | None:
    """What each client connection has sent nats-server and received from it so far (/connz), summed
    by connection name (kefu-intake, kefu-routing, ...; two processes of a service are one line)."""
    if server is None or server.monitor_port is None:
        return None
    connz = httpx.get(f"http://127.0.0.1:{server.monitor_port}/connz", params={"limit": 1024}, timeout=5).json()
    traffic: Traffic = {}
    for c in connz["connections"]:
        name = c.get("name") or f"cid-{c['cid']}"
        was = traffic.get(name, (0, 0, 0, 0))
        traffic[name] = (was[0] + c["in_msgs"], was[1] + c["out_msgs"], was[2] + c["in_bytes"], was[3] + c["out_bytes"])
    return traffic


class CpuMeter:
    """CPU per request of a set of processes over one run, the messages nats-server received per
    request, and how many of the machine's cores the run kept busy."""

    def __init__(self, pids: dict[str, int], server: NatsServer | None) -> None:
        self.pids, self.server = pids, server

    def __enter__(self) -> CpuMeter:
        self.cpu = {n: cpu_seconds(pid) for n, pid in self.pids.items()}
        self.traffic = server_traffic(self.server)
        self.messages, self.wall = server_messages(self.server), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.wall
        self.used = {n: cpu_seconds(pid) - self.cpu[n] for n, pid in self.pids.items()}
        after = server_messages(self.server)
        traffic = server_traffic(self.server)
        self.connections: Traffic = {}
        if traffic is not None and self.traffic is not None:
            self.connections = {name: tuple(now - was for now, was in zip(counts, self.traffic.get(name, (0, 0, 0, 0)),
                                                                           strict=True))  # type: ignore[misc]
                                for name, counts in traffic.items()}
        self.received = self.sent = None
        if after is not None and self.messages is not None:
            self.received, self.sent = after[0] - self.messages[0], after[1] - self.messages[1]

    def report(self, requests: int) -> dict[str, object]:
        per = {n: round(v * 1000 / requests, 2) for n, v in self.used.items()}
        return {"cpu_ms_per_request": per, "cpu_ms_per_request_total": round(sum(self.used.values()) * 1000 / requests, 2),
                "cores_busy": round(sum(self.used.values()) / self.seconds, 2),
                "server_messages_per_request": None if self.received is None else round(self.received / requests, 1),
                "server_messages_out_per_request": None if self.sent is None else round(self.sent / requests, 1),
                # per connection and request: messages in and out, and their bytes (what each process asks of
                # nats-server: the like-for-like check of kefu's operations against the floor's)
                "per_connection": {name: {"in": round(c[0] / requests, 2), "out": round(c[1] / requests, 2),
                                          "in_bytes": round(c[2] / requests), "out_bytes": round(c[3] / requests)}
                                   for name, c in sorted(self.connections.items()) if c[0] or c[1]}}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_kefu(url: str, var: Path, replicas: dict[str, int] | None = None,
               log_level: str = "INFO") -> dict[str, subprocess.Popen]:
    """The services at the log level they are deployed with (INFO: intake logs every request), or
    KEFU_LOG_LEVEL. The caller's per-service settings (e.g. KEFU_ROUTING_WORKERS) pass through."""
    own = tuple(f"KEFU_{name.upper()}_" for name in SERVICES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_") or k.startswith(own)} | {
        "KEFU_NATS_URL": url, "KEFU_ADMIN_TOKEN": "bench", "KEFU_ADAPTER_KEYS": "bench:bench",
        "KEFU_FEEDBACK_SURVEY_SECRET": "bench", "KEFU_LOG_LEVEL": os.environ.get("KEFU_LOG_LEVEL", log_level),
    }
    procs = {}
    for service in SERVICES:
        # KEFU_BENCH_SERVICES: only these (e.g. without metrics, to see what it costs the server)
        listed = os.environ.get("KEFU_BENCH_SERVICES", ",".join(SERVICES)).split(",")
        for n in range(1, (replicas or {}).get(service, 1 if service in listed else 0) + 1):
            name = service if n == 1 else f"{service}-{n}"
            env[f"KEFU_{service.upper()}_HTTP_PORT"] = str(port := free_port())
            procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{service}"], cwd=ROOT, env=dict(env),
                                           stdout=subprocess.DEVNULL, stderr=open(var / f"{name}.log", "w"))
            procs[name].port = port  # type: ignore[attr-defined]
    deadline = time.time() + 60
    for name, proc in procs.items():
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{proc.port}/readyz", timeout=1).status_code == 200:  # type: ignore[attr-defined]
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"{name} did not get ready; see {var / (name + '.log')}")
            time.sleep(0.2)
    return procs


async def routing_alone(url: str, var: Path, run: str, count: int, processes: int) -> dict[str, float]:
    """routing's own throughput with `processes` routing processes and nothing else running: intake
    first turns `count` requests into a backlog of `request.received` (routing stopped), then the
    routing processes start and drain it. Completed requests per second from the first
    `request.assigned` to the last, and how many were assigned."""
    front = await asyncio.to_thread(start_kefu, url, var, {"routing": 0, "feedback": 0, "metrics": 0})
    items = kefu_items(count, run)
    request_id = lambda msg: json.loads(msg.data)["request_id"]  # noqa: E731
    await drive(url, "intake", "max rate", items, REQUEST_RECEIVED, request_id, None)
    await asyncio.to_thread(stop, front)
    wanted = {key for _, _, key in items}
    assigned_at: dict[str, float] = {}
    done = asyncio.Event()

    async def on_assigned(msg) -> None:
        key = request_id(msg)
        if key in wanted and key not in assigned_at:
            assigned_at[key] = time.perf_counter()
            if len(assigned_at) == len(wanted):
                done.set()

    nc = await nats.connect(url)
    await nc.subscribe(REQUEST_ASSIGNED, cb=on_assigned)
    await nc.flush()
    only = {"intake": 0, "feedback": 0, "metrics": 0, "routing": processes}
    procs = await asyncio.to_thread(start_kefu, url, var, only)  # the loop keeps receiving meanwhile
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:
        pass
    await nc.close()
    await asyncio.to_thread(stop, procs)
    times = sorted(assigned_at.values())
    rate = round((len(times) - 1) / (times[-1] - times[0]), 1) if len(times) > 1 else 0.0
    return {"throughput_per_s": rate, "completed": len(times)}


def profile(procs: dict[str, subprocess.Popen], var: Path) -> list[subprocess.Popen]:
    """py-spy (sampling, from outside the process) on every service during the max-rate run:
    collapsed stacks in var/bench/profile-<service>.txt (KEFU_BENCH_PROFILE=1; py-spy must be installed)."""
    spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen([str(spy) if spy.exists() else "py-spy", "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "200",
                              "--output", str(var / f"profile-{name}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, proc in procs.items()]


async def ops_ready(url: str, timeout: float = 60.0) -> None:
    """Until both kefu-ops workers have their durable consumers (a fresh `setup-ops` has none)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    try:
        for stream, durable in (("BENCHOPS_IN", "ops-intake"), ("BENCHOPS_EVENTS", "ops-routing")):
            while True:
                try:
                    await js.consumer_info(stream, durable)
                    break
                except nats.js.errors.NotFoundError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"kefu-ops worker {durable} made no consumer in {timeout:.0f} s") from None
                    await asyncio.sleep(0.1)
    finally:
        await nc.close()


def stop(procs) -> None:
    for proc in procs.values() if isinstance(procs, dict) else procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs.values() if isinstance(procs, dict) else procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def prepare(prefix: str) -> tuple[Path, NatsServer | None, str]:
    """var/bench, and KEFU_NATS_URL or the bundled nats-server on a fresh store."""
    var = ROOT / "var" / "bench"
    var.mkdir(parents=True, exist_ok=True)
    if url := os.environ.get("KEFU_NATS_URL"):
        return var, None, url
    server = NatsServer(Path(tempfile.mkdtemp(prefix=prefix)), monitor=True).start()
    return var, server, server.url


async def main() -> int:
    rate = float(os.environ.get("KEFU_BENCH_RATE", "300"))
    seconds = float(os.environ.get("KEFU_BENCH_SECONDS", "10"))
    burst = int(os.environ.get("KEFU_BENCH_MAX_COUNT", "4000"))
    var, server, url = prepare("kefu-bench-")
    results: list[Result] = []
    memory: dict[str, dict[str, int]] = {}
    costs: dict[str, dict[str, object]] = {}
    alone: dict[str, dict[str, float]] = {}
    try:
        procs = start_kefu(url, var)
        memory = {n: {"before_kib": rss_kib(p.pid)} for n, p in procs.items()}
        run = uuid.uuid4().hex[:8]
        assigned = assigned_request_id
        items = kefu_items(int(rate * seconds), run + "f")
        results.append(await drive(url, "kefu", "fixed rate", items, REQUEST_ASSIGNED, assigned, rate))
        await check_complete(url, var, results[-1], items)
        profilers = profile(procs, var) if os.environ.get("KEFU_BENCH_PROFILE") else []
        server_pid = {"nats-server": server.proc.pid} if server and server.proc else {}
        # the payloads are made before the meter starts: the driver's CPU is sending and matching only
        items = kefu_items(burst, run + "m")
        with CpuMeter({n: p.pid for n, p in procs.items()} | server_pid | {"driver": os.getpid()}, server) as meter:
            results.append(await drive(url, "kefu", "max rate", items, REQUEST_ASSIGNED, assigned, None))
        costs["kefu"] = meter.report(burst)
        await check_complete(url, var, results[-1], items)
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        # 300/s again, now that the services have run for a while: the first seconds after a start pay
        # for first-time work (caches, new stream blocks) that steady state does not. After the max-rate
        # run, so that run starts from the same state as in the earlier sessions' figures
        items = kefu_items(int(rate * seconds), run + "w")
        results.append(await drive(url, "kefu", "fixed, warm", items, REQUEST_ASSIGNED, assigned, rate))
        await check_complete(url, var, results[-1], items)
        for n, p in procs.items():
            memory[n]["after_kib"] = rss_kib(p.pid)
        stop(procs)

        # scale-out: the same max-rate load with two processes of the bottleneck service
        scaled = os.environ.get("KEFU_BENCH_SCALE", "routing")
        if scaled:
            procs = start_kefu(url, var, {scaled: 2})
            items = kefu_items(burst, run + "s")
            results.append(await drive(url, f"kefu {scaled}x2", "max rate", items, REQUEST_ASSIGNED, assigned, None))
            await check_complete(url, var, results[-1], items)
            stop(procs)

        # scale-out of routing on its own: the whole pipeline above shares two cores among everything
        alone = {str(n): await routing_alone(url, var, f"{run}a{n}", burst, n) for n in (1, 2)}

        subprocess.run([sys.executable, "-m", "devtools.bench_bare", "setup", url], cwd=ROOT, check=True)
        workers = [subprocess.Popen([sys.executable, "-m", "devtools.bench_bare", "worker", url, a, b], cwd=ROOT)
                   for a, b in (("bench.a", "bench.b"), ("bench.b", "bench.c"))]
        time.sleep(1.0)  # the workers create their consumers
        bare = lambda n, tag: [("bench.a", f"{tag}{i}".encode(), f"{tag}{i}") for i in range(n)]  # noqa: E731
        results.append(await drive(url, "bare", "fixed rate", bare(int(rate * seconds), "f"), "bench.c",
                                   lambda msg: msg.data.decode(), rate))
        pids = {f"worker-{i}": w.pid for i, w in enumerate(workers, 1)} | server_pid | {"driver": os.getpid()}
        items = bare(burst, "m")
        with CpuMeter(pids, server) as meter:
            results.append(await drive(url, "bare", "max rate", items, "bench.c", lambda msg: msg.data.decode(), None))
        costs["bare"] = meter.report(burst)
        stop(workers)

        ops = lambda n, tag: [("benchops.in", f"{tag}{i}".encode(), f"{tag}{i}") for i in range(n)]  # noqa: E731
        key = lambda msg: msg.data.split(b" ", 1)[0].decode()  # noqa: E731

        def ops_native(n: int, tag: str) -> list[tuple[str, bytes, str]]:
            """The floor's messages carrying the bench's native payloads: `<key> <channel> <payload>`."""
            return [("benchops.in", f"{tag}{i}".encode() + b" " + subject.rsplit(".", 1)[1].encode() + b" " + raw,
                     f"{tag}{i}") for i, (subject, raw, _) in enumerate(kefu_items(n, run + tag))]

        async def ops_pipeline(command: str, name: str, tag: str, *, fixed: bool,
                               make: Callable[[int, str], list[tuple[str, bytes, str]]] = ops) -> None:
            """The two kefu-ops workers (`command`): a fixed-rate run when asked, then the metered max-rate run."""
            subprocess.run([sys.executable, "-m", "devtools.bench_bare", "setup-ops", url], cwd=ROOT, check=True)
            workers = [subprocess.Popen([sys.executable, "-m", "devtools.bench_bare", command, url, role], cwd=ROOT)
                       for role in ("intake", "routing")]
            await ops_ready(url)
            if fixed:
                results.append(await drive(url, name, "fixed rate", make(int(rate * seconds), "f"),
                                           "benchops.events.assigned", key, rate))
            pids = {f"{r}-ops": w.pid for r, w in zip(("intake", "routing"), workers, strict=True)} | server_pid | {"driver": os.getpid()}
            items = make(burst, tag)
            with CpuMeter(pids, server) as meter:
                results.append(await drive(url, name, "max rate", items, "benchops.events.assigned", key, None))
            costs[name] = meter.report(burst)
            stop(workers)

        # the same JetStream operations as a kefu request makes, no business logic
        await ops_pipeline("ops-worker", "bare kefu-ops", "m", fixed=True)
        # the same operations consumed the way kefu's services consume (durable_subscriber)
        await ops_pipeline("ops-worker-kefu", "kefu-ops, kefu consumer", "k", fixed=False)
        # and every operation through kefu's platform (AckingJetStream, Publisher, together)
        await ops_pipeline("ops-worker-platform", "kefu-ops, kefu platform", "p", fixed=False)
        # the floor as one program: the same operations with kefu's core run on each message
        await ops_pipeline("ops-worker-core", "kefu-ops with the core", "c", fixed=False, make=ops_native)
    finally:
        if server is not None:
            server.stop()
    core = core_cpu_ms(kefu_items(burst, run + "c"))
    texts = labelled_texts()
    judgement = judgement_costs(texts)

    kefu_max = next(r for r in results if r.name == "kefu" and r.mode == "max rate")
    bare_max = next(r for r in results if r.name == "bare" and r.mode == "max rate")
    ratio = round(kefu_max.throughput_per_s / bare_max.throughput_per_s, 2) if bare_max.throughput_per_s else None
    print(f"\n{'pipeline':16} {'mode':11} {'offered/s':>9} {'sent':>6} {'done':>6} {'thru/s':>8} "
          f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        offered = f"{r.offered_per_s:.0f}" if r.offered_per_s else "max"
        print(f"{r.name:16} {r.mode:11} {offered:>9} {r.sent:>6} {r.completed:>6} {r.throughput_per_s:>8} "
              f"{r.p50_ms:>8} {r.p95_ms:>8} {r.p99_ms:>8} {r.max_ms:>8}")
    ops_max = next(r for r in results if r.name == "bare kefu-ops" and r.mode == "max rate")
    ops_ratio = round(kefu_max.throughput_per_s / ops_max.throughput_per_s, 2) if ops_max.throughput_per_s else None
    print(f"\nkefu / bare throughput at max rate: {ratio}")
    print(f"kefu / bare with kefu's JetStream operations at max rate: {ops_ratio}")
    if alone:
        one, two = alone["1"]["throughput_per_s"], alone["2"]["throughput_per_s"]
        print(f"routing alone (a backlog of {burst} received requests drained, nothing else running): 1 process "
              f"{one}/s ({alone['1']['completed']:.0f} done), 2 processes {two}/s ({alone['2']['completed']:.0f} done)"
              + (f", {100 * (two / one - 1):+.0f} %" if one else ""))
    for name, m in memory.items():
        print(f"RSS {name:8} {m['before_kib'] / 1024:6.1f} MiB -> {m.get('after_kib', 0) / 1024:6.1f} MiB")
    for name, cost in costs.items():
        print(f"{name} at max rate, per request: CPU " +
              ", ".join(f"{n} {v}" for n, v in cost["cpu_ms_per_request"].items()) +  # type: ignore[attr-defined]
              f" = {cost['cpu_ms_per_request_total']} ms; {cost['server_messages_per_request']} messages into "
              f"nats-server, {cost['server_messages_out_per_request']} out; {cost['cores_busy']} cores busy")
        print("    by connection, per request (messages in / out, bytes in / out): " + "; ".join(
            f"{n} {c['in']} / {c['out']}, {c['in_bytes']} / {c['out_bytes']} B"
            for n, c in cost["per_connection"].items()))  # type: ignore[attr-defined]
    if costs and bare_max.throughput_per_s:
        budget = round((os.cpu_count() or 1) * 1000 / bare_max.throughput_per_s, 2)
        print(f"at the bare pipeline's rate, {os.cpu_count()} cores give {budget} ms of CPU per request; "
              f"kefu uses {costs['kefu']['cpu_ms_per_request_total']} ms")
    floor = round(float(costs["bare kefu-ops"]["cpu_ms_per_request_total"]) + sum(core.values()), 2)  # type: ignore[arg-type]
    print(f"kefu's core alone (in-process, no bus): intake {core['intake']}, routing {core['routing']} ms per "
          f"request; with bare kefu-ops' CPU, {floor} ms per request (bare: "
          f"{costs['bare']['cpu_ms_per_request_total']} ms)")
    overhead = round(float(costs["kefu"]["cpu_ms_per_request_total"]) - floor, 2)  # type: ignore[arg-type]
    consumer_path = round(float(costs["kefu-ops, kefu consumer"]["cpu_ms_per_request_total"])  # type: ignore[arg-type]
                          - float(costs["bare kefu-ops"]["cpu_ms_per_request_total"]), 2)  # type: ignore[arg-type]
    platform_path = round(float(costs["kefu-ops, kefu platform"]["cpu_ms_per_request_total"])  # type: ignore[arg-type]
                     - float(costs["bare kefu-ops"]["cpu_ms_per_request_total"]), 2)  # type: ignore[arg-type]
    one_program = costs["kefu-ops with the core"]
    together = round(float(one_program["cpu_ms_per_request_total"]) - floor, 2)  # type: ignore[arg-type]
    print(f"the floor as one program (bare kefu-ops with kefu's core run on each message): "
          f"{one_program['cpu_ms_per_request_total']} ms per request, {together:+} ms against "
          f"the floor's sum")
    print(f"kefu's overhead above that floor: {overhead} ms per request, of which kefu's consumer path (the same "
          f"operations consumed through durable_subscriber, less through a nats-py loop): {consumer_path} ms; "
          f"kefu's platform (the consumer path, and the operations made through AckingJetStream, Publisher and "
          f"together): {platform_path} ms")
    print(f"routing's judgement alone ({len(texts)} labelled requests): {judgement['judge_us']} µs per "
          f"request, of which normalising the text {judgement['normalise_us']} µs"
          + (f"; jieba would add {judgement['jieba_segment_us']} µs to segment it and {judgement['jieba_load_s']} s "
             "to load (not adopted)" if "jieba_segment_us" in judgement else ""))
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                       "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0]},
           "results": [asdict(r) for r in results], "kefu_over_bare": ratio, "kefu_over_bare_kefu_ops": ops_ratio, "rss_kib": memory,
           "cpu_ms_per_request": costs.get("kefu", {}).get("cpu_ms_per_request", {}), "costs": costs,
           "core_cpu_ms_per_request": core, "judgement_us_per_request": judgement, "routing_alone_per_s": alone,
           "floor_cpu_ms_per_request": floor, "overhead_above_floor_ms": overhead,
           "consumer_path_ms_per_request": consumer_path, "platform_ms_per_request": platform_path,
           "floor_as_one_program_ms_per_request": one_program["cpu_ms_per_request_total"],
           "floor_as_one_program_over_sum_ms": together,
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (var / "result.json").write_text(json.dumps(out, indent=2))
    print(f"written {var / 'result.json'}")
    return 0


async def backlog() -> int:
    """`make bench-backlog`: does the cost of a request grow with the backlog? One available agent
    serving a queue the load never reaches (hr.urgent) and N requests already waiting in a queue
    nobody serves (quality.normal, written straight into kefu_waiting); then the max-rate load,
    whose requests also wait. Throughput of request.assigned for each N (KEFU_BENCH_BACKLOGS,
    default 0,10000,100000): it should not fall with N."""
    burst = int(os.environ.get("KEFU_BENCH_MAX_COUNT", "4000"))
    sizes = [int(n) for n in os.environ.get("KEFU_BENCH_BACKLOGS", "0,10000,100000").split(",")]
    rows = []
    for size in sizes:
        var, server, url = prepare("kefu-backlog-")
        try:
            procs = start_kefu(url, var, {"feedback": 0, "metrics": 0})
            routing = f"http://127.0.0.1:{procs['routing'].port}"  # type: ignore[attr-defined]
            httpx.put(f"{routing}/v1/agents/free-1", headers={"Authorization": "Bearer bench"}, timeout=30, json={
                "name": "free", "department": "hr", "queues": ["hr.urgent"], "capacity": 100,
                "status": "available"}).raise_for_status()
            nc = await nats.connect(url)
            waiting = await nc.jetstream().key_value("kefu_waiting")
            received = "2026-12-01T01:00:00+00:00"
            for first in range(0, size, 1000):
                await asyncio.gather(*(waiting.put(f"req_backlog{i:015d}", json.dumps({
                    "request_id": f"req_backlog{i:015d}", "queue": "quality.normal", "department": "quality",
                    "priority": "normal", "emergency": False, "received_at": received, "language": "zh"}).encode())
                    for i in range(first, min(first + 1000, size))))
            await nc.close()
            while size and len(httpx.get(f"{routing}/v1/queues/quality.normal", timeout=60,
                                         headers={"Authorization": "Bearer bench"}).json()["waiting"]) < size:
                await asyncio.sleep(0.5)  # routing's mirror takes the backlog in (a watcher)
            result = await drive(url, f"backlog {size}", "max rate", kefu_items(burst, uuid.uuid4().hex[:8]),
                                 REQUEST_ASSIGNED, lambda msg: json.loads(msg.data)["request_id"], None)
            rows.append((size, result.throughput_per_s, result.p99_ms))
            stop(procs)
        finally:
            if server is not None:
                server.stop()
    print(f"\n{'waiting before':>14} {'assigned/s':>10} {'p99 ms':>8} {'vs none':>8}")
    for size, rate, p99 in rows:
        print(f"{size:>14} {rate:>10} {p99:>8} {rate / rows[0][1]:>8.2f}")
    return 0


async def soak() -> int:
    """`make soak`: a long run at a fixed rate (KEFU_SOAK_COUNT requests, default 1,000,000, at
    KEFU_SOAK_RATE/s, default 200); every assigned request is closed through routing's API so that
    nothing accumulates by design; each process's RSS is sampled 20 times. Memory counts as flat when
    no sample after the first 10% exceeds the 10% sample by more than 10%."""
    count = int(os.environ.get("KEFU_SOAK_COUNT", "1000000"))
    rate = float(os.environ.get("KEFU_SOAK_RATE", "200"))
    var, server, url = prepare("kefu-soak-")
    procs = start_kefu(url, var, log_level="WARNING")  # a million requests would log ~250 MB at INFO
    pids = {n: p.pid for n, p in procs.items()} | ({"nats-server": server.proc.pid} if server and server.proc else {})
    routing = f"http://127.0.0.1:{procs['routing'].port}"  # type: ignore[attr-defined]
    samples: list[dict[str, float]] = []
    closed = 0
    cpu_start = {n: cpu_seconds(pid) for n, pid in pids.items()}
    cpu_ms: dict[str, float] = {}
    try:
        nc = await nats.connect(url)
        js = nc.jetstream()
        closing = asyncio.Semaphore(64)
        http = httpx.AsyncClient(base_url=routing, headers={"Authorization": "Bearer bench"}, timeout=30)
        pending: set[asyncio.Task] = set()

        async def close(request_id: str) -> None:
            nonlocal closed
            async with closing:
                try:
                    resp = await http.post(f"/v1/requests/{request_id}/close", json={"reason": "soak"})
                except httpx.HTTPError:
                    return
                closed += resp.status_code == 200

        async def on_assigned(msg) -> None:
            task = asyncio.create_task(close(json.loads(msg.data)["request_id"]))
            pending.add(task)
            task.add_done_callback(pending.discard)

        await nc.subscribe(REQUEST_ASSIGNED, cb=on_assigned)
        channels = list(Channel)
        run = uuid.uuid4().hex[:8]
        start = time.perf_counter()
        every = max(1, count // 20)
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            channel = channels[i % len(channels)]
            source = f"{run}-{i}" if channel is not Channel.email else f"{run}-{i}@soak.example"
            await js.publish(intake_subject(channel), payload(channel, source, contact=f"13{i % 10**9:09d}"),
                             headers={"Nats-Msg-Id": source}, timeout=30)
            if (i + 1) % every == 0:
                samples.append({"requests": i + 1, "closed": closed,
                                **{n: round(rss_kib(pid) / 1024, 1) for n, pid in pids.items()}})
                print(f"{i + 1:>9} sent {closed:>9} closed  " +
                      "  ".join(f"{n} {samples[-1][n]} MiB" for n in pids), flush=True)
        deadline = time.perf_counter() + 120
        while closed < count and time.perf_counter() < deadline:  # the last ones are still on their way
            await asyncio.sleep(0.5)
        await asyncio.gather(*pending, return_exceptions=True)
        await http.aclose()
        await nc.close()
        cpu_ms = {n: round((cpu_seconds(pid) - cpu_start[n]) * 1000 / count, 3) for n, pid in pids.items()}
    finally:
        stop(procs)
        if server is not None:
            server.stop()
    base = samples[max(0, len(samples) // 10 - 1)] if samples else {}
    growth = {n: round(100 * (max(x[n] for x in samples[len(samples) // 10:]) / base[n] - 1), 1)
              for n in pids if base.get(n)}
    flat = all(g <= 10 for n, g in growth.items() if n != "nats-server")
    print(f"\n{count} sent, {closed} closed through the API")
    print(f"RSS growth after warm-up (%): {growth}; services flat within 10%: {flat}")
    print("CPU per request, its routing and its close through the API (ms): "
          + ", ".join(f"{n} {v}" for n, v in cpu_ms.items()))
    out = {"count": count, "rate": rate, "closed": closed, "samples": samples, "growth_pct": growth, "flat": flat,
           "cpu_ms_per_request": cpu_ms,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (var / "soak.json").write_text(json.dumps(out, indent=2))
    print(f"written {var / 'soak.json'}")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(run({"soak": soak, "backlog": backlog}.get(sys.argv[1] if sys.argv[1:] else "", main)()))
