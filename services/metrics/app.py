"""Composition root of metrics: replays the event log into the projection at every start (read by
sequence, no consumer: every replica reads every event, so replicas agree and a restart gives the
same numbers; handlers.py), and serves the indicators and the reports."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import nats.js.errors
from fastapi import FastAPI

from shared.calendar import business_hours
from shared.config import department_names
from shared.contract import subjects as s
from shared.nats.logreader import LogReader
from shared.runtime import Runtime, base_app, make_runtime

from .api import build_api, build_lookup_api
from .collector import IndicatorCollector
from .domain.indicators import Projection
from .handlers import PUBLISHES, Replay, watch_replay
from .lookup import LookupIndex
from .settings import MetricsSettings

log = logging.getLogger("kefu.metrics")
DESCRIPTION = "Turns the event log into the service indicators as Prometheus metrics, and reports."


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    departments = department_names(settings.config_dir)
    hours = business_hours(settings.config_dir)
    projection = Projection(departments=departments)
    index = LookupIndex(settings.index_path, region=settings.phone_region)
    replay = Replay(projection, index)
    runtime = make_runtime(settings, consumer="metrics", publishes=PUBLISHES)
    runtime.registry.register(IndicatorCollector(projection, now=lambda: datetime.now(UTC)))

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None
        try:
            info = await rt.js.stream_info(s.STREAM_EVENTS)
            replay.target = info.state.last_seq
            stream_id = str(info.created)
        except nats.js.errors.NotFoundError:
            replay.target, stream_id = 0, ""
        if index.meta("stream") not in (None, stream_id):
            log.warning("the event stream was recreated: rebuilding the lookup index")
            index.reset()
        index.apply_batch([], stream_id=stream_id)
        rt.tasks.append(asyncio.create_task(replay.follow(LogReader(rt.broker.connection, s.STREAM_EVENTS))))

        rt.tasks.append(asyncio.create_task(watch_replay(rt, replay)))

    app = base_app(runtime, title="kefu metrics", description=DESCRIPTION, on_start=on_start,
                   caught_up=lambda: replay.caught_up)
    app.include_router(build_lookup_api(index))
    app.include_router(build_api(runtime, departments=departments, tz=hours.tz, lookback_days=settings.report_lookback_days,
                                 retention_days=settings.retention_events_days, concurrency=settings.report_concurrency,
                                 queue=settings.report_queue, kept=settings.reports_kept))
    return app
