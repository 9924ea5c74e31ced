"""metrics under its own NATS user (deploy/nats as shipped) replays and follows thousands of events
(read by sequence with batched direct gets). And /readyz tells the truth when the replay stalls
(here: the same users without the read grant)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from services.metrics.app import create_app as metrics_app
from services.metrics.handlers import REPLAY
from services.metrics.settings import MetricsSettings
from shared.contract import subjects as s
from tests.support.secured import PASSWORDS, ROOT, connect, copy_configs, password, standalone
from tests.support.services import common_settings, running, wait_until

pytestmark = pytest.mark.integration
EVENTS = 4000
READ_GRANT = '"$JS.API.DIRECT.GET.KEFU_EVENTS"\n'  # metrics' (the console's line goes on with a comma)


def provision(url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "devtools.provision"], cwd=ROOT, capture_output=True, text=True,
                          env={"KEFU_NATS_URL": url, "KEFU_NATS_USER": "admin", "PATH": "/usr/bin:/bin",
                               "KEFU_NATS_PASSWORD": PASSWORDS["KEFU_NATS_ADMIN_PASSWORD"]}, timeout=60)
    assert done.returncode == 0, done.stderr


async def publish_rejections(url: str, start: int, count: int) -> None:
    """`count` rejected-payload events, as intake publishes them (a few hundred bytes each)."""
    nc = await connect(url, "admin", inbox="_INBOX")
    js = nc.jetstream()
    now = datetime.now(UTC).isoformat()
    for first in range(start, start + count, 500):
        await asyncio.gather(*(
            js.publish(s.REQUEST_REJECTED, json.dumps({
                "event_id": f"evt-rej-{i}", "occurred_at": now, "channel": "sms", "reason": "unparseable",
                "detail": "the body is not form-encoded " + "x" * 200, "raw": {"stream": "KEFU_REJECTED", "seq": i},
            }).encode(), headers={"Nats-Msg-Id": f"evt-rej-{i}"})
            for i in range(first, min(first + 500, start + count))))
    await nc.close()


def settings(url: str) -> MetricsSettings:
    return MetricsSettings(**common_settings(url, nats_user="metrics", nats_password=password("metrics"),
                                             provision=False, config_dir=ROOT / "config",
                                             consumer_check_seconds=0.5))


async def rejected_total(http: httpx.AsyncClient) -> float:
    response = await http.get("/metrics")
    if response.status_code != 200:
        return -1
    return sum(float(line.rsplit(" ", 1)[1]) for line in response.text.splitlines()
               if line.startswith("kefu_requests_rejected_total{"))


async def test_metrics_replays_and_follows_thousands_of_events_under_its_own_user(tmp_path: Path) -> None:
    with standalone(tmp_path) as url:
        provision(url)
        await publish_rejections(url, 0, EVENTS)  # the log it replays at start
        async with running(metrics_app, settings(url)) as metrics, metrics.client() as http:
            await wait_until(lambda: ready(http), timeout=60, what="metrics caught up")
            assert await rejected_total(http) == EVENTS
            await publish_rejections(url, EVENTS, EVENTS)  # and as many while it runs
            await wait_until(lambda: counted(http, 2 * EVENTS), timeout=60, what=f"{2 * EVENTS} counted")
            await asyncio.sleep(1.2)  # two progress checks (0.5 s) after the last event: still ready
            assert (await http.get("/readyz")).json() == {"status": "ready", "nats_connected": True, "stalled": []}


async def test_readyz_says_not_ready_when_the_replay_stalls(tmp_path: Path) -> None:
    conf = copy_configs(tmp_path / "nats", drop=READ_GRANT)
    with standalone(tmp_path, conf) as url:
        provision(url)
        async with running(metrics_app, settings(url)) as metrics, metrics.client() as http:
            await wait_until(lambda: ready(http), timeout=30, what="metrics ready on an empty log")
            await publish_rejections(url, 0, EVENTS)

            async def stalled() -> bool:
                response = await http.get("/readyz")
                return response.status_code == 503 and response.json()["stalled"] == [REPLAY]

            await wait_until(stalled, timeout=30, what="readiness reporting the stalled replay")
            assert 0 <= await rejected_total(http) < EVENTS  # frozen part-way: what ready used to hide


async def ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def counted(http: httpx.AsyncClient, expected: int) -> bool:
    return await rejected_total(http) == expected
