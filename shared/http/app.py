"""The HTTP app every service serves: kefu's error shape for every failure, the operations endpoints
(/healthz, /readyz, /metrics), offline /docs, kefu's OpenAPI document, and uvicorn to serve it."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..settings import KefuSettings
from .errors import ApiError, ErrorBody
from .openapi import document

if TYPE_CHECKING:
    from ..runtime import Runtime


def create_app(runtime: Runtime, *, title: str, description: str,
               lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
               ready: Callable[[], tuple[bool, dict[str, Any]]], caught_up: Callable[[], bool]) -> FastAPI:
    """`ready`: whether the service is ready, and what /readyz says beside it; `caught_up`: False
    while a service replays its log (metrics): not ready, and no /metrics, until it has."""
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
        ok, facts = ready()
        return JSONResponse({"status": "ready" if ok else "not_ready", **facts}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics of this service",
             response_class=PlainTextResponse,
             responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}},
                        503: {"model": ErrorBody, "description": "still replaying the event log"}})
    async def metrics() -> Response:
        if not caught_up():
            return JSONResponse({"error": "not_ready", "detail": "still replaying the event log"}, status_code=503)
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: document(app, runtime.settings)  # type: ignore[method-assign]
    return app


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        allowed = getattr(route, "methods", None)
        if match != Match.NONE and allowed:
            methods |= set(allowed)
    return sorted(methods)


def serve(app: FastAPI, settings: KefuSettings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        # uvloop where installed (a dependency on Linux and macOS): the services are round trips to
        # NATS, and libuv's loop spends less CPU per message than asyncio's (shared/README.md)
        loop="auto",
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds(),
        lifespan="on",
    )
    uvicorn.Server(config).run()
