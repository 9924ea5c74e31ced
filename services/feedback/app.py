"""Composition root of feedback."""

from __future__ import annotations

from fastapi import FastAPI

from shared.calendar import business_hours
from shared.config import load_yaml_model
from shared.contract import subjects as s
from shared.runtime import Late, Runtime, base_app, make_runtime

from .api import build_api
from .domain.rules import FeedbackConfig
from .handlers import PUBLISHES, build_router
from .service import Feedback, FeedbackMetrics
from .settings import FeedbackSettings
from .store import FeedbackStore

DESCRIPTION = (
    "Sends results and satisfaction surveys back through the customer's channel and a survey page, "
    "reopens requests on dissatisfaction, and schedules revisits."
)


def create_app(settings: FeedbackSettings | None = None) -> FastAPI:
    settings = settings or FeedbackSettings()
    config = load_yaml_model(settings.config_dir / "feedback.yaml", FeedbackConfig)
    hours = business_hours(settings.config_dir)
    runtime = make_runtime(settings, consumer=s.CONSUMER_FEEDBACK, publishes=PUBLISHES)
    metrics = FeedbackMetrics(runtime.registry)
    feedback: Late[Feedback] = Late("feedback")
    runtime.broker.include_router(build_router(runtime, feedback, batch_size=settings.batch_size))

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None and rt.publisher is not None
        if settings.survey_secret is None:
            raise SystemExit("KEFU_FEEDBACK_SURVEY_SECRET is not set: survey links are signed with it")
        service = feedback.set(Feedback(
            config=config, hours=hours, store=await FeedbackStore.open(rt.js), publisher=rt.publisher,
            base_url=settings.base_url(), secret=settings.survey_secret.get_secret_value(), metrics=metrics,
            mail_domain=settings.mail_domain,
        ))
        await service.start_monthly_schedule()

    app = base_app(runtime, title="kefu feedback", description=DESCRIPTION, on_start=on_start)
    app.include_router(build_api(feedback))
    return app
