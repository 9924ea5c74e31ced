"""Composition root of the console: the agents' and supervisors' page (static files, no build
step), the live stream fed from the event log, and the page's API calls forwarded to routing,
metrics and feedback. The console keeps no state of its own and publishes nothing."""

from __future__ import annotations

import asyncio

import httpx
import nats.js.errors
from fastapi import FastAPI

from shared.contract import subjects as s
from shared.nats.logreader import LogReader
from shared.runtime import Late, Runtime, base_app, make_runtime

from .api import Live, build_api
from .handlers import PUBLISHES
from .live import AccessCache, Tail
from .settings import ConsoleSettings

DESCRIPTION = "The agents' and supervisors' console: the page, the live stream, and kefu's API behind one origin."


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    runtime = make_runtime(settings, consumer="console", publishes=PUBLISHES)
    live: Late[Live] = Late("console live stream")
    timeout = httpx.Timeout(settings.upstream_timeout_seconds)
    clients = {name: httpx.AsyncClient(base_url=url, timeout=timeout) for name, url in (
        ("routing", settings.routing_url), ("metrics", settings.metrics_url), ("feedback", settings.feedback_url))}

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None
        try:
            last = (await rt.js.stream_info(s.STREAM_EVENTS)).state.last_seq
        except nats.js.errors.NotFoundError:
            last = 0
        reader = LogReader(rt.broker.connection, s.STREAM_EVENTS)
        tail = Tail(LogReader(rt.broker.connection, s.STREAM_EVENTS), size=settings.live_buffer, next_seq=last + 1)
        access = AccessCache(await rt.js.key_value(s.BUCKET_REQUESTS))
        rt.service = live.set(Live(tail, reader, access))
        rt.tasks.append(asyncio.create_task(tail.follow()))

    async def on_stop(_: Runtime) -> None:
        for client in clients.values():
            await client.aclose()

    app = base_app(runtime, title="kefu console", description=DESCRIPTION, on_start=on_start, on_stop=on_stop)
    app.include_router(build_api(settings, live, clients))
    return app
