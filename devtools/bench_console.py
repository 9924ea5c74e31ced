"""`make bench-console`: what the console's live stream costs with many pages open.

A fresh nats-server, the console as its own process, KEFU_BENCH_PAGES pages (supervisors, each
reading every notice, so each notice is checked against routing's record and sent to every page)
and KEFU_BENCH_EVENTS events published at KEFU_BENCH_RATE per second, spread over 1,000 requests
whose records are in kefu_requests. Reports the console's CPU per event and per notice sent, and
the delay from an event's publish to its arrival on the pages (p50 / p99), into
var/bench/console.json. docs/performance.md has the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats

from devtools.natsserver import NatsServer, free_port
from shared.contract import subjects as s
from shared.http import auth

ROOT = Path(__file__).parents[1]
ADMIN = "bench-admin-token"
REQUESTS = 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def page(url: str, token: str, expected: int, delays: list[float], ready: asyncio.Event,
               opened: list[int]) -> int:
    got = 0
    async with httpx.AsyncClient(base_url=url, timeout=None) as http, \
            http.stream("GET", "/v1/live", headers={"Authorization": f"Bearer {token}"}) as live:
        opened.append(1)
        ready.set()
        async for line in live.aiter_lines():
            if line.startswith("data:"):
                at = json.loads(line[5:])["at"]
                delays.append(time.time() - datetime.fromisoformat(at).timestamp())
                got += 1
                if got >= expected:
                    return got
    return got


async def main() -> int:
    pages, events, rate = (int(os.environ.get(k, d)) for k, d in (
        ("KEFU_BENCH_PAGES", "200"), ("KEFU_BENCH_EVENTS", "5000"), ("KEFU_BENCH_RATE", "200")))
    var = ROOT / "var" / "bench"
    var.mkdir(parents=True, exist_ok=True)
    store = var / "console-js"
    subprocess.run(["rm", "-rf", str(store)], check=True)
    server = NatsServer(store).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")} | {
        "KEFU_NATS_URL": server.url, "KEFU_ADMIN_TOKEN": ADMIN, "KEFU_CONSOLE_HTTP_PORT": str(port),
        "KEFU_CONSOLE_LIVE_CONNECTIONS": str(pages + 10)}
    console = subprocess.Popen([sys.executable, "-m", "services.console"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=open(var / "console.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        kv = await js.key_value(s.BUCKET_REQUESTS)
        ids = [f"req_{i:026d}".replace("0", "a").replace("1", "b")[:30] for i in range(REQUESTS)]
        for rid in ids:
            await kv.put(rid, json.dumps({"department": "business", "assignment": {"co_departments": []},
                                          "agent_id": None}).encode())
        key = auth.signing_key(None, ADMIN)
        token, _ = auth.issue(key, auth.Principal(subject="sup", role="supervisor", departments=frozenset({"business"})),
                              now=datetime.now(UTC), ttl=timedelta(hours=1))
        delays: list[float] = []
        opened: list[int] = []
        readies = [asyncio.Event() for _ in range(pages)]
        tasks = [asyncio.create_task(page(url, token, events, delays, r, opened)) for r in readies]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        await asyncio.sleep(1)  # every stream past its first read
        before = cpu_seconds(console.pid)
        started = time.monotonic()
        for n in range(events):
            body = {"event_id": f"evt-{n}", "occurred_at": datetime.now(UTC).isoformat(), "request_id": ids[n % REQUESTS],
                    "agent_id": "a1"}
            await js.publish(s.REQUEST_ACCEPTED, json.dumps(body).encode(), headers={"Nats-Msg-Id": f"evt-{n}"})
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        counts = await asyncio.wait_for(asyncio.gather(*tasks), 300)
        cpu = cpu_seconds(console.pid) - before
        await nc.close()
    finally:
        console.terminate()
        console.wait(timeout=30)
        server.stop()
    delays.sort()
    result = {
        "pages": pages, "events": events, "rate": rate, "notices_sent": sum(counts),
        "console_cpu_seconds": round(cpu, 2),
        "cpu_ms_per_event": round(cpu * 1000 / events, 3),
        "cpu_us_per_notice": round(cpu * 1e6 / max(sum(counts), 1), 1),
        "delay_p50_ms": round(statistics.median(delays) * 1000, 1),
        "delay_p99_ms": round(delays[int(len(delays) * 0.99) - 1] * 1000, 1),
    }
    (var / "console.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(c == events for c in counts) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
