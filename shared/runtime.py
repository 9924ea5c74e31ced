"""The shape every service shares: one broker, one metrics registry, one HTTP app, one lifecycle.

A service's composition root builds a `Runtime`, includes its `NatsRouter`, adds its HTTP routes to
`base_app(...)` and serves it. Start-up order: connect to NATS, provision streams and buckets
(idempotent), run the service's own `on_start` (open its buckets), start the subscribers, then
report ready. Shutdown (SIGTERM / Ctrl-C): not ready, stop fetching, let in-flight handlers finish
(`graceful_timeout`), ack, close.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import ZoneInfo

import nats.js.errors
import uvicorn
from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from faststream import BaseMiddleware
from faststream.exceptions import IgnoredException
from faststream.message import SourceType
from faststream.nats import NatsBroker
from faststream.prometheus.consts import PROCESSING_STATUS_BY_ACK_STATUS, PROCESSING_STATUS_BY_HANDLER_EXCEPTION_MAP
from faststream.prometheus.container import MetricsContainer
from faststream.prometheus.types import ProcessingStatus
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import auth
from . import subjects as s
from .bus import (
    AckingJetStream,
    Permanent,
    Publisher,
    RetryPolicy,
    broker_kwargs,
    make_dead_letter,
    plain_header_parsing,
    provision,
    require_server,
    settle_middleware,
    stream_configs,
    tune_nats_client,
    verify,
)
from .config import EX_CONFIG, ConfigError
from .models import AuditRecord
from .outbox import OutboundGate
from .progress import ConsumerProgress
from .settings import KefuSettings

log = logging.getLogger("kefu.runtime")
T = TypeVar("T")


class ApiError(Exception):
    """An HTTP error answered as `{"error": ..., "detail": ...}`."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


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
    settings: KefuSettings
    registry: CollectorRegistry
    broker: NatsBroker
    js: JetStreamContext | None = None
    publisher: Publisher | None = None
    pipeline: PipelineMetrics | None = None
    handlers: HandlerSeries | None = None
    ready: bool = False
    progress: ConsumerProgress = field(default_factory=ConsumerProgress)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)  # background work, cancelled first on stop
    service: Any = None  # the service's composed object, for diagnostics and tests
    revocations: KeyValue | None = None  # staff token revocations (shared.runtime.require_staff)

    def current_message(self) -> Msg:
        """The nats-py message the running handler was given. A handler parameter annotated with
        FastStream's `NatsMessage` does the same through a context dependency that fast_depends
        runs in a worker thread, a thread hop per message (py-spy: a third of feedback's CPU)."""
        return self.broker.context.get_local("message").raw_message


class PipelineMetrics:
    """Every service's own pipeline: what it published, redeliveries, dead letters, consumer backlog.
    (FastStream's middleware adds handler latency, messages received and handler errors.)"""

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


def consumer_label(raw: Msg) -> str:
    """The durable consumer a message came through: a bounded label value."""
    try:
        return raw.metadata.consumer or "unknown"
    except Exception:  # noqa: BLE001 - not a JetStream delivery (no ack subject to read it from)
        return "core"


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
    """FastStream's handler metrics of each durable consumer, made once per consumer."""

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


def consumer_metrics_middleware(handlers: HandlerSeries) -> Any:
    """FastStream's handler metrics (`faststream_received_*`: the metrics, labels, buckets and
    statuses of its PrometheusMiddleware, made by its own `MetricsContainer`), with `handler` =
    the durable consumer. FastStream labels each message with its subject, and timer subjects carry
    the request id (`kefu.timers.fire.routing.<request>.<timer>`): a dozen series per request,
    unbounded (found by `make soak`: routing +0.6 KiB per request). And its middleware looks up
    six labelled series per message through its manager (~19 us of CPU per message); this one
    looks up each consumer's series once (~5 us)."""
    class HandlerMetrics(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            if msg.source_type is SourceType.RESPONSE:
                return await call_next(msg)
            series = handlers.of(consumer_label(msg.raw_message))
            series.received.inc()
            series.size.observe(len(msg.body))
            series.in_process.inc()
            err: Exception | None = None
            start = time.perf_counter()
            try:
                return await call_next(msg)
            except Exception as exc:
                err = exc
                if not isinstance(exc, IgnoredException):
                    series.exception(type(exc).__name__).inc()
                raise
            finally:
                series.duration.observe(time.perf_counter() - start)
                series.in_process.dec()
                status = ProcessingStatus.acked
                if msg.committed or err:  # as FastStream's middleware decides it
                    status = (PROCESSING_STATUS_BY_ACK_STATUS.get(msg.committed)
                              or PROCESSING_STATUS_BY_HANDLER_EXCEPTION_MAP.get(type(err))
                              or ProcessingStatus.error)
                series.processed(status.value).inc()

    return HandlerMetrics


def make_runtime(settings: KefuSettings, *, consumer: str) -> Runtime:
    registry = CollectorRegistry()
    holder: dict[str, Any] = {}
    pipeline = PipelineMetrics(registry)
    handlers = HandlerSeries(registry, app_name=f"kefu_{settings.service_name}")

    async def dead_letter(msg: Any, reason: str) -> None:
        pipeline.dead_lettered.labels(msg.metadata.consumer or consumer).inc()
        await make_dead_letter(holder["runtime"].publisher, consumer)(msg, reason)

    policy = RetryPolicy(settings.max_deliver, settings.retry_backoff_seconds)
    broker = NatsBroker(
        **broker_kwargs(settings),
        middlewares=[
            consumer_metrics_middleware(handlers),
            settle_middleware(policy, dead_letter, on_redelivery=lambda c: pipeline.redelivered.labels(c).inc()),
        ],
        graceful_timeout=settings.ack_wait_seconds / 2,
        logger=logging.getLogger(f"kefu.{settings.service_name}.broker"),
        # FastStream's "Received" / "Processed" lines for every message: DEBUG, not INFO. At INFO they
        # cost ~250 us of CPU per consumed message through the JSON formatter and doubled the log
        # volume; handler errors are still logged at ERROR, kefu's own events at INFO
        log_level=logging.DEBUG,
        # every handler takes one parameter, which `decoder_for` makes from the body: fast_depends'
        # per-message solve (2-3 % of routing's CPU) would only validate it again
        apply_types=False,
    )
    runtime = Runtime(settings=settings, registry=registry, broker=broker, pipeline=pipeline, handlers=handlers)
    holder["runtime"] = runtime
    return runtime


OnStart = Callable[[Runtime], Awaitable[None]]

GC_THRESHOLDS = (20_000, 20, 20)


def settle_garbage_collector() -> None:
    """Once started: what start-up made (modules, FastAPI's routes, pydantic's validators, config:
    several hundred thousand objects that live as long as the process) leaves the collector's
    view, and the youngest generation is collected less often. CPython's full collection walks
    every tracked object: it paused a service for 45-100 ms now and then under load (the p99 of
    make bench), where after `gc.freeze()` it walks only what the service made since. Messages
    make short-lived objects in bursts; a larger first threshold collects them in fewer passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def durable_subscriber(router: Any, settings: KefuSettings, *, subject: str | list[str], stream: str, durable: str,
                       description: str, batch_size: int = 32, workers: int = 1) -> Any:
    """The one way kefu consumes: a durable pull consumer with explicit acks, bounded redelivery
    (settled by the settle middleware), the service's own reply inbox. The messages of one fetch
    (up to `batch_size`) are handled concurrently; with `workers` > 1 FastStream's concurrent
    subscriber keeps up to that many in flight across fetches. Either way handlers must be safe
    to run concurrently: each message's effects are idempotent and revision-checked. Several
    subjects: one consumer with those filter subjects (the server delivers nothing else).

    The body is decoded once, by what the handler's parameter asks for (`decoder_for`)."""
    from faststream import AckPolicy
    from faststream.nats import ConsumerConfig, JStream, PullSub

    from .bus import inbox_prefix

    several = isinstance(subject, list)

    def register(handler: Callable[..., Awaitable[None]]) -> Any:
        return router.subscriber(
            "" if several else subject,
            stream=JStream(stream, declare=False),
            durable=durable,
            pull_sub=PullSub(batch_size=batch_size, timeout=1.0),
            config=ConsumerConfig(ack_wait=settings.ack_wait_seconds, max_deliver=settings.max_deliver,
                                  max_ack_pending=1000, filter_subjects=list(subject) if several else []),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            inbox_prefix=inbox_prefix(settings),
            title=durable,
            description=description,
            decoder=decoder_for(handler),
            **({"max_workers": workers} if workers > 1 else {}),
        )(handler)

    return register


def decoder_for(handler: Callable[..., Any]) -> Callable[[Any], Any]:
    """A FastStream decoder for the handler's one parameter: a pydantic model is validated straight
    from the JSON bytes (`model_validate_json`, one pass; FastStream would `json.loads` and then
    validate the dict), `bytes` is the body as it came (FastStream would try JSON on it first),
    anything else is parsed JSON. A body that does not decode raises inside the settle middleware,
    which dead-letters it."""
    import inspect
    import typing

    params = list(inspect.signature(handler).parameters)
    kind = typing.get_type_hints(handler).get(params[0]) if params else bytes
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        model = kind

        async def as_model(msg: Any) -> Any:
            return model.model_validate_json(msg.body)
        return as_model

    # coroutines: FastStream runs a plain function given as decoder in a worker thread
    async def as_bytes(msg: Any) -> bytes:
        return msg.body

    async def as_json(msg: Any) -> Any:
        return json.loads(msg.body)

    async def as_object(msg: Any) -> dict[str, Any]:
        value = json.loads(msg.body)
        if not isinstance(value, dict):
            raise Permanent(f"expected a JSON object, got {type(value).__name__}")
        return value

    if kind is bytes:
        return as_bytes
    return as_object if kind is dict or typing.get_origin(kind) is dict else as_json


def base_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    on_start: OnStart | None = None,
    on_stop: OnStart | None = None,
    caught_up: Callable[[], bool] = lambda: True,
) -> FastAPI:
    """`caught_up`: a service that must first catch up (metrics replaying its log) reports not
    ready, and serves no metrics, until it has: Prometheus never sees its counters restart."""
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
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
        runtime.revocations = await js.key_value(s.BUCKET_REVOCATIONS)
        runtime.publisher = Publisher(js, metrics=runtime.pipeline)
        runtime.publisher.outbound_gate = OutboundGate(
            js, cap=runtime.settings.outbound_daily_cap, tz=ZoneInfo(runtime.settings.timezone),
            held=runtime.pipeline.outbound_held if runtime.pipeline else None)
        if on_start is not None:
            await on_start(runtime)
        await broker.start()
        _initialise_series(runtime)
        runtime.tasks.append(asyncio.create_task(_watch_consumers(runtime)))
        settle_garbage_collector()
        runtime.ready = True
        log.info("service ready", extra={"service": runtime.settings.service_name})
        try:
            yield
        finally:
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
                await broker.stop()  # stops fetching, waits for in-flight handlers, drains, closes
            except Exception as exc:  # noqa: BLE001 - e.g. NATS already gone: unacked messages are redelivered later
                log.warning("broker did not stop cleanly", extra={"error": repr(exc)})
            log.info("service stopped", extra={"service": runtime.settings.service_name})

    # the /docs and /redoc pages with their Swagger UI and ReDoc assets served by the service itself
    # (fastapi-offline bundles them): call centres often have no way out to a public CDN
    app = FastAPIOffline(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
        return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {400: "invalid_body", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route matched
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return JSONResponse(
            {"error": names.get(exc.status_code, "http_error"), "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": "invalid_body", "detail": detail}, status_code=422)

    @app.get("/healthz", tags=["operations"], summary="Liveness: the service's event loop answers")
    async def healthz() -> dict[str, str | int]:
        return {"status": "ok", "service": runtime.settings.service_name, "pid": os.getpid()}

    @app.get("/readyz", tags=["operations"], summary="Readiness: connected to NATS and consuming",
             responses={503: {"description": "not ready (starting, NATS away, replaying, a consumer stalled)"}})
    async def readyz() -> JSONResponse:
        connected = _connected(runtime.broker)
        stalled = sorted(runtime.progress.stalled)
        ok = runtime.ready and connected and caught_up() and not stalled
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "nats_connected": bool(connected), "stalled": stalled},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics of this service",
             response_class=PlainTextResponse,
             responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}},
                        503: {"model": ErrorBody, "description": "still replaying the event log"}})
    async def metrics() -> Response:
        if not caught_up():
            return JSONResponse({"error": "not_ready", "detail": "still replaying the event log"}, status_code=503)
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class ErrorBody(BaseModel):
    """Every error kefu answers: a machine-readable `error` and a human-readable `detail`."""

    error: str
    detail: str


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        allowed = getattr(route, "methods", None)
        if match != Match.NONE and allowed:
            methods |= set(allowed)
    return sorted(methods)


SERVICE_PORTS = {"intake": 8081, "routing": 8082, "feedback": 8083, "metrics": 8084}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with kefu's error body everywhere: 422 is `{"error", "detail"}` (not
    FastAPI's list), and operations that need a bearer token document 401 and 403, those with a
    body 400 (a body that is not valid JSON or UTF-8)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    runtime: Runtime = app.state.runtime
    port = runtime.settings.http_port or SERVICE_PORTS.get(runtime.settings.service_name, 8080)
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      servers=[{"url": f"http://127.0.0.1:{port}", "description": "make run (local development)"}],
                      license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"})
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for operations in doc.get("paths", {}).values():
        for op in operations.values():
            op.setdefault("security", [])  # public: said explicitly, not left to a global default
            responses = op.setdefault("responses", {})
            wanted = {"422": "invalid request"}
            if op.get("security"):
                wanted |= {"401": "missing, invalid or expired credentials", "403": "the caller's role may not"}
            if "requestBody" in op:
                wanted["400"] = "the body is not valid JSON / UTF-8"
            for code, description in wanted.items():
                if code == "422" and code not in responses and not op.get("parameters") and "requestBody" not in op:
                    continue  # nothing to validate
                current = responses.get(code, {})
                if "HTTPValidationError" not in json.dumps(current) and current.get("content"):
                    continue  # documented by the endpoint itself
                responses[code] = {"description": current.get("description") or description} | error
    if '"KefuSignature"' in json.dumps(doc.get("paths", {})):
        doc["components"].setdefault("securitySchemes", {})["KefuSignature"] = {
            "type": "apiKey", "in": "header", "name": "Kefu-Signature",
            "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">` with the adapter's key "
                           "(docs/channels.md); each signature is accepted once, for 5 minutes."}
    app.openapi_schema = doc
    return doc


def durable_consumers(runtime: Runtime) -> list[tuple[str, str]]:
    """(stream, durable) of every durable consumer the service's subscribers use."""
    found = []
    for sub in runtime.broker.subscribers:
        stream = getattr(getattr(sub, "stream", None), "name", None)
        durable = getattr(getattr(sub, "config", None), "durable_name", None)
        if stream and durable:
            found.append((stream, durable))
    return found


def _initialise_series(runtime: Runtime) -> None:
    consumers = durable_consumers(runtime)
    if runtime.pipeline is not None:
        runtime.pipeline.initialise(consumers=consumers,
                                    streams=[c.name for c in stream_configs(runtime.settings) if c.name])
    if runtime.handlers is not None:
        runtime.handlers.initialise([durable for _, durable in consumers])


async def _watch_consumers(runtime: Runtime) -> None:
    """Backlog of this service's durable consumers, for the consumer-backlog alert and KEDA, and
    whether each still moves (readiness)."""
    assert runtime.js is not None and runtime.pipeline is not None
    interval = runtime.settings.consumer_check_seconds
    while True:
        for stream, durable in durable_consumers(runtime):
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


_BEARER = HTTPBearer(auto_error=False, description="Adapter key, staff token or admin token.")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    # FastAPI's HTTPBearer parses the header and documents the scheme; kefu answers its own errors
    if credentials is None or not credentials.credentials.strip():
        raise ApiError(401, "unauthorized", "missing bearer token")
    return credentials.credentials.strip()


def _matches(token: str, secret: str) -> bool:
    return hmac.compare_digest(token.encode(), secret.encode())


def _staff_key(settings: KefuSettings) -> bytes:
    admin = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    secret = settings.token_secret.get_secret_value() if settings.token_secret is not None else None
    return auth.signing_key(secret, admin)


def staff_key(request: Request) -> bytes:
    return _staff_key(request.app.state.runtime.settings)


async def require_staff(request: Request, credentials: Credentials) -> auth.Principal:
    """Any staff member: an agent's, supervisor's or admin's token not revoked since it was
    issued, or the configured admin token."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    token = _bearer(credentials)
    if settings.admin_token is not None and _matches(token, settings.admin_token.get_secret_value()):
        return auth.ADMIN
    if token.count(".") != 2:  # not a JWT (e.g. an adapter key): no need to parse
        raise ApiError(401, "unauthorized", "invalid token")
    try:
        principal = auth.verify(_staff_key(settings), token)
    except auth.TokenRefused as refused:
        raise ApiError(401, "unauthorized", refused.detail) from None
    if auth.revoked(principal, not_before=await revoked_before(runtime, principal.subject)):
        raise ApiError(401, "unauthorized", "token revoked")
    return principal


async def revoked_before(runtime: Runtime, subject: str) -> float | None:
    """The subject's revocation time (tokens issued earlier are void), read fresh on every call so
    that a revocation holds at once in every service. Unreadable: the call is refused (503)."""
    try:
        if runtime.revocations is None:
            raise RuntimeError("revocations bucket not open")
        entry = await runtime.revocations.get(subject)
    except nats.js.errors.KeyNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - fail closed: no check, no access
        log.warning("revocation check failed", extra={"error": repr(exc)})
        raise ApiError(503, "auth_unavailable", "cannot check the token now; retry") from None
    return float(json.loads(entry.value)["not_before"]) if entry.value else None


async def revoke(runtime: Runtime, subject: str, *, reason: str, now: datetime) -> float:
    """Void every token `subject` holds now (routing: its NATS user alone may write the bucket)."""
    assert runtime.revocations is not None
    not_before = round(now.timestamp(), 3) + 0.001
    await runtime.revocations.put(subject, json.dumps({"not_before": not_before, "reason": reason}).encode())
    return not_before


async def require_supervisor(request: Request, credentials: Credentials) -> auth.Principal:
    principal = await require_staff(request, credentials)
    if not auth.is_supervisor(principal):
        raise ApiError(403, "forbidden", "supervisors and admins only")
    return principal


async def require_admin(request: Request, credentials: Credentials) -> auth.Principal:
    principal = await require_staff(request, credentials)
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "admins only")
    return principal


def require_adapter(request: Request, credentials: Credentials) -> str:
    """Adapter key (or the admin token). Returns the adapter's name."""
    settings: KefuSettings = request.app.state.runtime.settings
    token = _bearer(credentials)
    for key, name in settings.adapter_key_map().items():
        if _matches(token, key):
            return name
    if settings.admin_token is not None and _matches(token, settings.admin_token.get_secret_value()):
        return "admin"
    raise ApiError(401, "unauthorized", "invalid adapter key")


async def audit(request: Request, principal: auth.Principal, action: str, object_id: str) -> None:
    """Record that `principal` read `object_id` (on KEFU_AUDIT) before the data is returned.
    A read that cannot be recorded is not served."""
    runtime: Runtime = request.app.state.runtime
    record = AuditRecord(actor=principal.subject, role=principal.role, action=action, object_id=object_id,
                         service=runtime.settings.service_name, path=request.url.path)
    assert runtime.publisher is not None
    try:
        await runtime.publisher.model(s.audit_subject(action), record, msg_id=record.event_id, stream=s.STREAM_AUDIT)
    except Exception:  # noqa: BLE001 - whatever failed, the read is refused unrecorded
        log.warning("audit record not stored", extra={"action": action})
        raise ApiError(503, "audit_unavailable", "the read could not be recorded; try again") from None


Staff = Annotated[auth.Principal, Depends(require_staff)]
Supervisor = Annotated[auth.Principal, Depends(require_supervisor)]
Admin = Annotated[auth.Principal, Depends(require_admin)]
Adapter = Annotated[str, Depends(require_adapter)]


def check_credentials(settings: KefuSettings) -> None:
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        raise SystemExit(
            "KEFU_ADMIN_TOKEN is not set: kefu's HTTP APIs always require credentials "
            "(`make run` generates them into var/dev-credentials.json)"
        )


def serve(app: FastAPI, settings: KefuSettings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        # uvloop where installed (a dependency on Linux and macOS): the services are round trips to
        # NATS, and libuv's loop spends less CPU per message than asyncio's (make bench: 396 -> 503/s)
        loop="auto",
        timeout_graceful_shutdown=int(settings.ack_wait_seconds),
        lifespan="on",
    )
    uvicorn.Server(config).run()


def run_service(settings: KefuSettings, create_app: Callable[[Any], FastAPI]) -> None:
    """Body of every `python -m services.<name>`: logs, credentials check, serve until SIGTERM."""
    from .logs import configure

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
