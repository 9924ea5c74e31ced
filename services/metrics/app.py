"""Composition root of metrics: replays the event log (its server-side copy KEFU_METRICS) into the
projection at every start (an ordered consumer: every replica sees every event, so replicas agree
and a restart gives the same numbers; handlers.py), and serves the indicators and the reports."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import nats.js.errors
from fastapi import FastAPI
from nats.js.api import DeliverPolicy

from shared import subjects as s
from shared.calendar import business_hours
from shared.config import department_names
from shared.runtime import Runtime, base_app, make_runtime

from .api import build_api
from .collector import IndicatorCollector
from .domain.indicators import Projection
from .handlers import Replay, log_end, watch_replay
from .settings import MetricsSettings

log = logging.getLogger("kefu.metrics")
DESCRIPTION = "Turns the event log into the service indicators as Prometheus metrics, and reports."


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
        replay.subscription = await rt.js.subscribe(
            s.EVENTS_ALL, cb=replay.on_event, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
            stream=s.STREAM_METRICS,
        )

        rt.tasks.append(asyncio.create_task(watch_replay(rt, replay)))

    async def on_stop(rt: Runtime) -> None:
        if replay.subscription is not None:
            await replay.subscription.unsubscribe()

    app = base_app(runtime, title="kefu metrics", description=DESCRIPTION, on_start=on_start, on_stop=on_stop,
                   caught_up=lambda: replay.caught_up)
    app.include_router(build_api(runtime, departments=departments, tz=hours.tz, lookback_days=settings.report_lookback_days,
                                 retention_days=settings.retention_events_days, concurrency=settings.report_concurrency,
                                 queue=settings.report_queue, kept=settings.reports_kept))
    return app
