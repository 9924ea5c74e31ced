"""Composition root of intake: settings -> runtime (broker, registry) -> router, store, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from shared.contract import subjects as s
from shared.runtime import Late, Runtime, base_app, make_runtime

from .api import build_api
from .handlers import PUBLISHES, build_router
from .service import Intake, IntakeMetrics
from .settings import IntakeSettings
from .store import IntakeStore

DESCRIPTION = (
    "Accepts what each channel delivers in its own format, turns it into one canonical request, "
    "recognises the customer across channels, and rejects what it cannot understand with a reason."
)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = make_runtime(settings, consumer=s.CONSUMER_INTAKE, publishes=PUBLISHES)
    metrics = IntakeMetrics(runtime.registry)
    intake: Late[Intake] = Late("intake")
    runtime.broker.include_router(build_router(runtime, intake, batch_size=settings.batch_size, workers=settings.workers))

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None and rt.publisher is not None
        intake.set(Intake(
            settings=settings, store=await IntakeStore.open(rt.js), publisher=rt.publisher, metrics=metrics
        ))

    app = base_app(runtime, title="kefu intake", description=DESCRIPTION, on_start=on_start)
    app.include_router(build_api(intake))
    return app
