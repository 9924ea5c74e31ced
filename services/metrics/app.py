"""Composition root of metrics: replays the event log (its server-side copy KEFU_METRICS) into the projection at every start (an ordered
consumer: every replica sees every event, so replicas agree and a restart gives the same numbers),
and serves the indicators and the reports."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import nats.js.errors
from fastapi import FastAPI
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from shared import subjects as s
from shared.calendar import business_hours
from shared.config import department_names
from shared.runtime import Runtime, base_app, make_runtime

from .api import build_api
from .collector import IndicatorCollector
from .domain.indicators import Projection
from .settings import MetricsSettings

log = logging.getLogger("kefu.metrics")
DESCRIPTION = "Turns the event log into the service indicators as Prometheus metrics, and reports."


class Replay:
    """Applies the stream to the projection; caught up once it reached the last event at start."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.target = 0
        self.seq = 0

    @property
    def caught_up(self) -> bool:
        return self.seq >= self.target

    async def on_event(self, msg: Msg) -> None:
        try:
            self.projection.apply(msg.subject, json.loads(msg.data))
        except (ValueError, UnicodeDecodeError):
            log.warning("undecodable event skipped", extra={"subject": msg.subject})
        self.seq = msg.metadata.sequence.stream


REPLAY = "metrics-replay"


async def log_end(rt: Runtime) -> int:
    """The event log's last sequence as far as metrics can see it: KEFU_METRICS mirrors KEFU_EVENTS
    with the same sequence numbers, plus what the mirror has not copied yet (its lag)."""
    assert rt.js is not None
    info = await rt.js.stream_info(s.STREAM_METRICS)
    return info.state.last_seq + ((info.mirror.lag or 0) if info.mirror else 0)


async def watch_replay(rt: Runtime, replay: Replay) -> None:
    """The replay is an ordered push consumer: nothing on the server says it is stuck. Compare its
    position with the stream's last sequence every check; events waiting and no move = stalled."""
    assert rt.js is not None
    while True:
        await asyncio.sleep(rt.settings.consumer_check_seconds)
        try:
            last = await log_end(rt)
        except Exception:  # noqa: BLE001 - NATS briefly away: readiness says so already
            continue
        if rt.progress.observe(REPLAY, position=replay.seq, waiting=last - replay.seq):
            log.warning("event replay stalled", extra={"position": replay.seq, "last": last})


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    departments = department_names(settings.config_dir)
    hours = business_hours(settings.config_dir)
    projection = Projection(departments=departments)
    replay = Replay(projection)
    runtime = make_runtime(settings, consumer="metrics")
    runtime.registry.register(IndicatorCollector(projection, now=lambda: datetime.now(UTC)))

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None
        try:
            replay.target = await log_end(rt)
        except nats.js.errors.NotFoundError:
            replay.target = 0
        rt.extra["subscription"] = await rt.js.subscribe(
            s.EVENTS_ALL, cb=replay.on_event, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
            stream=s.STREAM_METRICS,
        )

        rt.extra["replay_watch"] = asyncio.create_task(watch_replay(rt, replay))

    async def on_stop(rt: Runtime) -> None:
        watch = rt.extra.get("replay_watch")
        if watch is not None:
            watch.cancel()
        sub = rt.extra.get("subscription")
        if sub is not None:
            await sub.unsubscribe()

    app = base_app(runtime, title="kefu metrics", description=DESCRIPTION, on_start=on_start, on_stop=on_stop,
                   caught_up=lambda: replay.caught_up)
    app.include_router(build_api(runtime, departments=departments, tz=hours.tz, lookback_days=settings.report_lookback_days,
                                 retention_days=settings.retention_events_days, concurrency=settings.report_concurrency,
                                 queue=settings.report_queue, kept=settings.reports_kept))
    return app
