"""The shape every service shares: one broker, one metrics registry, one HTTP app, one lifecycle.

A service's composition root (`services/<name>/app.py`) calls `make_runtime`, includes its
`NatsRouter`, adds its HTTP routes to `base_app(...)` and serves it. Start-up order: tune the NATS
client, connect, provision streams and buckets (idempotent), run the service's own `on_start` (open
its buckets, build its service object), start the subscribers, then report ready. Shutdown
(SIGTERM / Ctrl-C): not ready, stop background tasks, stop fetching, let in-flight handlers finish
(`graceful_timeout`), ack, close.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from faststream.nats import JStream, NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from .config import EX_CONFIG, ConfigError
from .contract import subjects as s
from .http.app import create_app, serve
from .http.security import check_credentials
from .nats.client import AckingJetStream, plain_header_parsing, tune_nats_client
from .nats.consume import Consuming, current_message, durable_consumers
from .nats.outbox import OutboundGate
from .nats.progress import ConsumerProgress
from .nats.publish import Contract, Publisher, Publishes
from .nats.settle import make_dead_letter
from .nats.topology import broker_kwargs, provision, require_server, stream_configs, verify
from .observability.metrics import HandlerSeries, PipelineMetrics
from .settings import KefuSettings

log = logging.getLogger("kefu.runtime")
T = TypeVar("T")


class Late(Generic[T]):
    """A service's composed object, made at start-up (it needs the NATS connection) and used by the
    routers and handlers built before it: `slot()` is the object, an error before it is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._value: T | None = None

    def set(self, value: T) -> T:
        self._value = value
        return value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def __call__(self) -> T:
        if self._value is None:
            raise RuntimeError(f"{self.name} is not started yet")
        return self._value


@dataclass
class Runtime:
    """What every service has: settings, metrics, the broker, and once started the JetStream
    context, the publisher and the revocations bucket."""

    settings: KefuSettings
    consumer: str  # names the service's dead letters (kefu.dlq.<consumer>)
    publishes: list[Publishes] = field(default_factory=list)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    broker: NatsBroker = field(init=False)
    pipeline: PipelineMetrics = field(init=False)
    handlers: HandlerSeries = field(init=False)
    js: JetStreamContext | None = None
    publisher: Publisher | None = None
    revocations: KeyValue | None = None  # staff token revocations (shared.http.security.require_staff)
    staff_api: bool = True  # serves staff endpoints: reads revocations (the gateway serves platforms only)
    ready: bool = False
    progress: ConsumerProgress = field(default_factory=ConsumerProgress)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)  # background work, cancelled first on stop
    service: Any = None  # the service's composed object, for diagnostics and tests

    def __post_init__(self) -> None:
        self.pipeline = PipelineMetrics(self.registry)
        self.handlers = HandlerSeries(self.registry, app_name=f"kefu_{self.settings.service_name}")

    def current_message(self) -> Msg:
        """The nats-py message the running handler was given."""
        return current_message()

    @property
    def consuming(self) -> Consuming:
        """What this service's consumers share (`durable_subscriber`): settings, handler series,
        dead letters, the redelivery counter."""
        return Consuming(self.settings, self.handlers, self.dead_letter,
                         lambda consumer: self.pipeline.redelivered.labels(consumer).inc())

    async def dead_letter(self, msg: Msg, reason: str) -> None:
        """Put a message the service gives up on into KEFU_DLQ, with the reason."""
        self.pipeline.dead_lettered.labels(msg.metadata.consumer or self.consumer).inc()
        if self.publisher is None:
            raise RuntimeError("not started: cannot dead-letter yet")
        await make_dead_letter(self.publisher, self.consumer)(msg, reason)


def make_runtime(settings: KefuSettings, *, consumer: str, publishes: Sequence[Publishes] = (),
                 staff_api: bool = True) -> Runtime:
    """`publishes`: every subject the service publishes to a contract stream (its handlers.py's
    PUBLISHES): declared to FastStream (the AsyncAPI publish side) and the only contract subjects
    its publisher will publish to."""
    runtime = Runtime(settings=settings, consumer=consumer, publishes=list(publishes), staff_api=staff_api)
    runtime.broker = NatsBroker(
        **broker_kwargs(settings),
        graceful_timeout=settings.ack_wait_seconds / 2,
        logger=logging.getLogger(f"kefu.{settings.service_name}.broker"),
        # FastStream's own lines (start-up, subscriptions) at DEBUG; each message's path is kefu's
        # (shared/nats/consume.py), which logs failures itself
        log_level=logging.DEBUG,
        # every handler takes one parameter, which `decoder_for` makes from the body: fast_depends'
        # per-message solve would only validate it again
        apply_types=False,
    )
    for declared in publishes:
        runtime.broker.publisher(declared.subject, stream=JStream(declared.stream, declare=False), schema=declared.model,
                                 title=declared.title or declared.subject, description=declared.description)
    return runtime


OnStart = Callable[[Runtime], Awaitable[None]]

GC_THRESHOLDS = (20_000, 20, 20)


def settle_garbage_collector() -> None:
    """Once started: what start-up made (modules, FastAPI's routes, pydantic's validators, config:
    several hundred thousand objects that live as long as the process) leaves the collector's
    view, and the youngest generation is collected less often. CPython's full collection walks
    every tracked object, a pause that shows in the latency tail under load, where after
    `gc.freeze()` it walks only what the service made since. Messages
    make short-lived objects in bursts; a larger first threshold collects them in fewer passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def start(runtime: Runtime, on_start: OnStart | None) -> None:
    tune_nats_client()
    broker = runtime.broker
    await broker.connect()
    server = broker.connection.connected_server_version
    require_server(server.major, server.minor)
    js = plain_header_parsing(await AckingJetStream.open(broker.connection))
    if runtime.settings.provision:
        await provision(js, runtime.settings)
    else:
        await verify(js, runtime.settings)
    runtime.js = js
    if runtime.staff_api:
        runtime.revocations = await js.key_value(s.BUCKET_REVOCATIONS)
    runtime.publisher = Publisher(js, metrics=runtime.pipeline, contract=Contract(runtime.publishes))
    runtime.publisher.outbound_gate = OutboundGate(
        js, cap=runtime.settings.outbound_daily_cap, tz=ZoneInfo(runtime.settings.timezone),
        held=runtime.pipeline.outbound_held, automatic_per_hour=runtime.settings.outbound_automatic_per_hour)
    if on_start is not None:
        await on_start(runtime)
    await broker.start()
    _initialise_series(runtime)
    runtime.tasks.append(asyncio.create_task(_watch_consumers(runtime)))
    settle_garbage_collector()
    runtime.ready = True
    log.info("service ready", extra={"service": runtime.settings.service_name})


async def stop(runtime: Runtime, on_stop: OnStart | None) -> None:
    runtime.ready = False
    for task in runtime.tasks:
        task.cancel()
    if runtime.tasks:  # bounded: a task that does not stop must not hold the shutdown
        lingering = (await asyncio.wait(runtime.tasks, timeout=5))[1]
        for task in lingering:
            log.warning("background task did not stop", extra={"task": repr(task.get_coro())[:200]})
    if on_stop is not None:
        await on_stop(runtime)
    try:
        await runtime.broker.stop()  # stops fetching, waits for in-flight handlers, drains, closes
    except Exception as exc:  # noqa: BLE001 - e.g. NATS already gone: unacked messages are redelivered later
        log.warning("broker did not stop cleanly", extra={"error": repr(exc)})
    log.info("service stopped", extra={"service": runtime.settings.service_name})


def base_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    on_start: OnStart | None = None,
    on_stop: OnStart | None = None,
    caught_up: Callable[[], bool] = lambda: True,
) -> FastAPI:
    """The service's HTTP app, whose lifespan starts and stops the service. `caught_up`: a service
    that must first catch up (metrics replaying its log) reports not ready, and serves no metrics,
    until it has: Prometheus never sees its counters restart."""
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await start(runtime, on_start)
        try:
            yield
        finally:
            await stop(runtime, on_stop)

    def ready() -> tuple[bool, dict[str, Any]]:
        connected = _connected(runtime.broker)
        stalled = sorted(runtime.progress.stalled)
        ok = runtime.ready and connected and caught_up() and not stalled
        return ok, {"nats_connected": connected, "stalled": stalled}

    return create_app(runtime, title=title, description=description, lifespan=lifespan, ready=ready,
                      caught_up=caught_up)


def _initialise_series(runtime: Runtime) -> None:
    consumers = durable_consumers(runtime.broker)
    runtime.pipeline.initialise(consumers=consumers, streams=[c.name for c in stream_configs(runtime.settings) if c.name])
    runtime.handlers.initialise([durable for _, durable in consumers])


async def _watch_consumers(runtime: Runtime) -> None:
    """Backlog of this service's durable consumers, for the consumer-backlog alert and KEDA, and
    whether each still moves (readiness)."""
    assert runtime.js is not None
    interval = runtime.settings.consumer_check_seconds
    while True:
        for stream, durable in durable_consumers(runtime.broker):
            try:
                info = await runtime.js.consumer_info(stream, durable)
            except Exception:  # noqa: BLE001 - not created yet, or NATS briefly away: next round
                continue
            runtime.pipeline.pending.labels(stream, durable).set(info.num_pending or 0)
            runtime.pipeline.ack_pending.labels(stream, durable).set(info.num_ack_pending or 0)
            runtime.progress.observe(durable, position=info.delivered.stream_seq or 0, waiting=info.num_pending or 0)
        await asyncio.sleep(interval)


def _connected(broker: NatsBroker) -> bool:
    try:
        return bool(broker.connection.is_connected)
    except Exception:  # noqa: BLE001 - not connected yet (FastStream raises until connect)
        return False


def run_service(settings: KefuSettings, create_app: Callable[[Any], FastAPI]) -> None:
    """Body of every `python -m services.<name>`: logs, credentials check, serve until SIGTERM."""
    from .observability.logs import configure

    configure(settings.service_name, settings.log_level)
    check_credentials(settings)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        # a configuration mistake does not heal by restarting: say where it is, once, and stop
        for line in str(exc).splitlines():
            print(f"kefu {settings.service_name}: configuration error: {line}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None
    serve(app, settings)
