"""Composition root of routing."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from shared.config import load_yaml_model
from shared.contract import subjects as s
from shared.reload import ConfigReloader
from shared.runtime import Late, Runtime, base_app, make_runtime

from .api import build_api
from .domain.messages import Templates
from .domain.rules import RoutingConfig
from .handlers import PUBLISHES, build_router
from .service import Routing, RoutingMetrics
from .settings import RoutingSettings
from .store import RoutingStore

DESCRIPTION = (
    "Judges category, priority and emergencies; assigns lead and co-handling departments, queues and "
    "agents; runs the SLA clocks on the working-day calendar; the request lifecycle API."
)


def create_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    config = RoutingConfig.load(settings.config_dir)  # fails fast with file:line on a bad config
    templates = load_yaml_model(settings.config_dir / "messages.yaml", Templates)
    runtime = make_runtime(settings, consumer=s.CONSUMER_ROUTING, publishes=PUBLISHES)
    metrics = RoutingMetrics(runtime.registry, config.departments.departments)
    routing: Late[Routing] = Late("routing")
    runtime.broker.include_router(build_router(runtime, routing, batch_size=settings.batch_size, workers=settings.workers))
    stop = asyncio.Event()

    def load() -> tuple[RoutingConfig, Templates]:
        return (RoutingConfig.load(settings.config_dir),
                load_yaml_model(settings.config_dir / "messages.yaml", Templates))

    def apply(new: tuple[RoutingConfig, Templates]) -> str | None:
        """Rules, SLA policies, tuning, responsibilities and messages change in place; a department
        taken away needs a restart (its queues, agents and open requests)."""
        service = routing()
        removed = set(service.config.departments.departments) - set(new[0].departments.departments)
        if removed:
            return f"departments.yaml: removing {', '.join(sorted(removed))} needs a restart"
        service.config, service.templates = new
        return None

    reloader = ConfigReloader(settings.config_dir, load=load, apply=apply, registry=runtime.registry,
                              interval=settings.config_reload_seconds)

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None and rt.publisher is not None
        store = await RoutingStore.open(rt.js)
        service = routing.set(Routing(config=config, templates=templates, store=store, publisher=rt.publisher,
                                      metrics=metrics, mail_domain=settings.mail_domain))
        rt.service = service
        rt.tasks.append(asyncio.create_task(service.run_background(stop)))
        rt.tasks.append(asyncio.create_task(reloader.run()))

    async def on_stop(rt: Runtime) -> None:
        stop.set()  # (its background task is cancelled before on_stop runs)
        if routing.ready:
            await routing().store.close()

    app = base_app(runtime, title="kefu routing", description=DESCRIPTION, on_start=on_start, on_stop=on_stop)
    app.include_router(build_api(routing))
    return app
