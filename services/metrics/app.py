"""Composition root of metrics (first version): the contract's request counters, rebuilt from the
event log at every start by replaying KEFU_EVENTS with an ordered consumer, so a restart gives the
same numbers. The full indicators, dashboards and alerts come with the metrics issue."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from fastapi import FastAPI
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from shared import subjects as s
from shared.config import department_names
from shared.enums import Category, Channel, Priority
from shared.runtime import Runtime, base_app, make_runtime

from .domain.tally import REJECTION_REASONS, Tally
from .settings import MetricsSettings

log = logging.getLogger("kefu.metrics")
DESCRIPTION = "Turns the event log into the service indicators as Prometheus metrics."


class TallyCollector(Collector):
    """Exposes a Tally; every bounded label combination is present from the start (at zero)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def collect(self) -> Iterable[Metric]:
        t = self.tally
        channels = [c.value for c in Channel]
        received = CounterMetricFamily(
            "kefu_requests_received", "Requests received, by channel.", labels=["channel"]
        )
        for ch in channels:
            received.add_metric([ch], t.received[ch])
        yield received
        rejected = CounterMetricFamily(
            "kefu_requests_rejected", "Payloads rejected, by channel and reason.", labels=["channel", "reason"]
        )
        for ch in [*channels, "unknown"]:
            for reason in [*REJECTION_REASONS, "other"]:
                rejected.add_metric([ch, reason], t.rejected[(ch, reason)])
        yield rejected
        assigned = CounterMetricFamily(
            "kefu_requests_assigned",
            "Requests assigned, by category, priority and lead department.",
            labels=["category", "priority", "department"],
        )
        for c in Category:
            for p in Priority:
                for d in t.departments:
                    assigned.add_metric([c.value, p.value, d], t.assigned[(c.value, p.value, d)])
        yield assigned


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    tally = Tally(departments=department_names(settings.config_dir))
    runtime = make_runtime(settings, consumer="metrics")
    runtime.registry.register(TallyCollector(tally))

    async def on_start(rt: Runtime) -> None:
        assert rt.js is not None

        async def on_event(msg: Msg) -> None:
            try:
                tally.apply(msg.subject, json.loads(msg.data))
            except (ValueError, UnicodeDecodeError):
                log.warning("undecodable event skipped", extra={"subject": msg.subject})

        # ordered consumer from the first event: no durable state, replays the log at every start
        rt.extra["subscription"] = await rt.js.subscribe(
            s.EVENTS_ALL, cb=on_event, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL,
            stream=s.STREAM_EVENTS,
        )

    return base_app(runtime, title="kefu metrics", description=DESCRIPTION, on_start=on_start)
