"""The Prometheus series every service exports about its own pipeline and handlers.
"""

from __future__ import annotations

from typing import Any

from faststream.prometheus.container import MetricsContainer
from faststream.prometheus.types import ProcessingStatus
from prometheus_client import CollectorRegistry, Counter, Gauge


class PipelineMetrics:
    """Every service's own pipeline: what it published, redeliveries, dead letters, consumer backlog.
    (The consume path adds FastStream's handler series: latency, messages received, statuses.)"""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter("kefu_messages_published_total", "JetStream publishes, by stream and outcome "
                                 "(stored, or duplicate: dropped by the stream's duplicate window).",
                                 ["stream", "outcome"], registry=registry)
        self.redelivered = Counter("kefu_messages_redelivered_total", "Messages handled again after a failure.",
                                   ["consumer"], registry=registry)
        self.dead_lettered = Counter("kefu_messages_dead_lettered_total", "Messages given up on (to KEFU_DLQ).",
                                     ["consumer"], registry=registry)
        self.pending = Gauge("kefu_consumer_pending_messages", "Messages in the stream not yet delivered to the "
                             "durable consumer.", ["stream", "consumer"], registry=registry)
        self.outbound_held = Counter("kefu_outbound_held_total", "Messages to customers held back because the "
                                     "customer reached the daily cap (KEFU_OUTBOUND_DAILY_CAP).", ["kind"],
                                     registry=registry)
        self.ack_pending = Gauge("kefu_consumer_ack_pending_messages", "Messages delivered and not yet acknowledged.",
                                 ["stream", "consumer"], registry=registry)

    def initialise(self, *, consumers: list[tuple[str, str]], streams: list[str]) -> None:
        """Every series alerts and dashboards read exists at zero from start-up, for each known
        label value: a counter that first appears at 1 has no increase() to alert on."""
        for stream, consumer in consumers:
            self.redelivered.labels(consumer)
            self.dead_lettered.labels(consumer)
            self.pending.labels(stream, consumer)
            self.ack_pending.labels(stream, consumer)
        for stream in streams:
            for outcome in ("stored", "duplicate"):
                self.published.labels(stream, outcome)


class _HandlerSeries:
    """One durable consumer's labelled children of FastStream's handler metrics, looked up once."""

    __slots__ = ("_exceptions", "_labels", "_metrics", "_processed", "duration", "in_process", "received", "size")

    def __init__(self, metrics: MetricsContainer, app_name: str, handler: str) -> None:
        self._metrics, self._labels = metrics, (app_name, "nats", handler)
        self.received = metrics.received_messages_total.labels(*self._labels)
        self.size = metrics.received_messages_size_bytes.labels(*self._labels)
        self.in_process = metrics.received_messages_in_process.labels(*self._labels)
        self.duration = metrics.received_processed_messages_duration_seconds.labels(*self._labels)
        self._processed: dict[str, Any] = {}
        self._exceptions: dict[str, Any] = {}

    def processed(self, status: str) -> Any:
        return self._child(self._processed, self._metrics.received_processed_messages_total, status)

    def exception(self, name: str) -> Any:  # the exception types a handler raises: a handful
        return self._child(self._exceptions, self._metrics.received_processed_messages_exceptions_total, name)

    def _child(self, cache: dict[str, Any], metric: Any, value: str) -> Any:
        child = cache.get(value)
        if child is None:
            child = cache[value] = metric.labels(*self._labels, value)
        return child


class HandlerSeries:
    """FastStream's handler metrics (`faststream_received_*`: the metrics, labels, buckets and
    statuses of its PrometheusMiddleware, made by its own `MetricsContainer`), with `handler` = the
    durable consumer, each consumer's series made once. Dashboards and alerts read these names.
    FastStream's middleware labels by subject, and timer subjects carry the request id: a dozen
    series per request, unbounded (found by `make soak`). The consume path (shared/nats/consume.py)
    records them."""

    def __init__(self, registry: CollectorRegistry, *, app_name: str) -> None:
        self.metrics = MetricsContainer(registry, custom_label_names=())
        self.app_name = app_name
        self.by_consumer: dict[str, _HandlerSeries] = {}

    def of(self, handler: str) -> _HandlerSeries:
        series = self.by_consumer.get(handler)
        if series is None:
            series = self.by_consumer[handler] = _HandlerSeries(self.metrics, self.app_name, handler)
        return series

    def initialise(self, consumers: list[str]) -> None:
        """At zero from start-up, with every processing status (see PipelineMetrics.initialise)."""
        for consumer in consumers:
            series = self.of(consumer)
            for status in ProcessingStatus:
                series.processed(status.value)


