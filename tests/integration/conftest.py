from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest

from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.metrics.app import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.nats.topology import provision
from shared.settings import KefuSettings
from tests.support.services import RunningService, Tap, common_settings, running, tap

pytestmark = pytest.mark.integration

Starter = Callable[..., AbstractAsyncContextManager[RunningService]]


@pytest.fixture
def start(nats_server, config_dir: Path) -> dict[str, Starter]:
    """Context managers that run each service in-process against the test's nats-server."""

    def make(app: Any, settings_cls: Any) -> Starter:
        def starter(**extra: Any) -> AbstractAsyncContextManager[RunningService]:
            return running(app, settings_cls(**common_settings(nats_server.url, config_dir=config_dir, **extra)))

        return starter

    return {
        "intake": make(intake_app, IntakeSettings),
        "routing": make(routing_app, RoutingSettings),
        "metrics": make(metrics_app, MetricsSettings),
        "feedback": make(feedback_app, FeedbackSettings),
    }


@pytest.fixture
async def events(nats_server) -> AsyncIterator[Tap]:
    async with tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as t:
        yield t


@pytest.fixture
async def outbound(nats_server) -> AsyncIterator[Tap]:
    async with tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as t:
        yield t


@pytest.fixture
async def js(nats_server) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await provision(js, KefuSettings())  # as any service does at start
    try:
        yield js
    finally:
        await nc.close()


@asynccontextmanager
async def pipeline(start: dict[str, Starter]) -> AsyncIterator[tuple[RunningService, RunningService]]:
    async with start["intake"]() as intake, start["routing"]() as routing:
        yield intake, routing
