"""Composition root of routing."""

from __future__ import annotations

from fastapi import FastAPI

from shared import subjects as s
from shared.config import load_yaml_model
from shared.runtime import Runtime, base_app, make_runtime

from .api import build_api
from .domain.messages import Templates
from .domain.rules import RoutingConfig
from .handlers import build_router
from .service import Routing, RoutingMetrics
from .settings import RoutingSettings
from .store import RequestStore

DESCRIPTION = (
    "Judges category, priority and emergencies, assigns lead and co-handling departments and "
    "queues, and sets due times."
)


def create_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    config = RoutingConfig.load(settings.config_dir)  # fails fast with file:line on a bad config
    templates = load_yaml_model(settings.config_dir / "messages.yaml", Templates)
    runtime = make_runtime(settings, consumer=s.CONSUMER_ROUTING)
    metrics = RoutingMetrics(runtime.registry, config.departments.departments)
    holder: dict[str, Routing] = {}
    runtime.broker.include_router(build_router(runtime, holder, batch_size=settings.batch_size))

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None and rt.publisher is not None
        holder["routing"] = Routing(
            config=config,
            templates=templates,
            store=await RequestStore.open(rt.js),
            publisher=rt.publisher,
            metrics=metrics,
        )

    app = base_app(runtime, title="kefu routing", description=DESCRIPTION, on_start=on_start)
    app.include_router(build_api(holder))
    return app
