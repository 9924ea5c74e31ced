"""HTTP edge of the console: the page, who is signed in, the live stream, and the page's API calls
forwarded to the service that answers them (with the caller's own token: each service applies its
own scope and audit, the console decides nothing about data)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel

from shared.http.auth import Role
from shared.http.errors import ApiError, ErrorBody
from shared.http.security import Staff
from shared.nats.logreader import LogReader
from shared.runtime import Late

from .live import AccessCache, Tail, notices
from .settings import ConsoleSettings

STATIC = Path(__file__).parent / "static"
# what the page loads may come from kefu only: no inline script, no other origin (a customer's
# words are shown as text; this makes markup that slipped through inert as well)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSETS = {"console.js": "text/javascript", "console.css": "text/css", "i18n.js": "text/javascript",
          "favicon.svg": "image/svg+xml"}
MAX_BODY = 64 * 1024
# the API paths the page uses, each to the service that serves it; nothing else is forwarded
FORWARD: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/v1/requests$"), "metrics"),
    (re.compile(r"^/v1/requests/req_[a-z2-7]{26}/surveys$"), "feedback"),
    (re.compile(r"^/v1/requests/req_[a-z2-7]{26}(/(reply|accept|note|pending|transfer|correct|escalate|resolve|close))?$"),
     "routing"),
    (re.compile(r"^/v1/agents/[A-Za-z0-9_-]{1,64}(/(work|status))?$"), "routing"),
    (re.compile(r"^/v1/queues/[A-Za-z0-9_.-]{1,100}$"), "routing"),
    (re.compile(r"^/v1/floor$"), "routing"),
    (re.compile(r"^/v1/tokens$"), "routing"),  # admins issue sign-in tokens from the Team page (routing: admins only)
]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 413, 502, 503)}


class Me(BaseModel):
    subject: str
    role: Role
    departments: list[str]


class Live:
    """What the live stream needs once started: the log's tail, a reader for pages further behind,
    the access cache, and the count of open streams."""

    def __init__(self, tail: Tail, reader: LogReader, access: AccessCache) -> None:
        self.tail, self.reader, self.access, self.open = tail, reader, access, 0


def upstream_of(path: str) -> str | None:
    return next((name for pattern, name in FORWARD if pattern.match(path)), None)


def build_api(settings: ConsoleSettings, live: Late[Live], clients: dict[str, httpx.AsyncClient]) -> APIRouter:
    api = APIRouter()

    @api.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @api.get("/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise ApiError(404, "not_found", f"no asset {name}")
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers=PAGE_HEADERS)

    @api.get("/v1/me", tags=["console"], response_model=Me, responses=ERRORS,
             summary="Who the bearer token names: the page signs in with it")
    async def me(who: Staff) -> Me:
        return Me(subject=who.subject, role=who.role, departments=sorted(who.departments))

    @api.get("/v1/live", tags=["console"], responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
             summary="Server-sent events: what happened to the requests the caller may read (offers, follow-ups, "
             "SLA warnings, emergencies, changes), from now on, or after `Last-Event-ID` (the event log's "
             "sequence) when a page reconnects. Notices name the request, never its content.")
    async def stream(who: Staff,
                     last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,19}$")] = None) -> StreamingResponse:
        state = live()
        if state.open >= settings.live_connections:
            raise ApiError(503, "too_many_streams", "this console has as many live streams as it serves; retry")
        after = int(last_event_id) if last_event_id is not None else None

        async def lines() -> AsyncIterator[bytes]:
            state.open += 1
            try:
                yield b"retry: 2000\n\n"
                async for chunk in notices(state.tail, state.reader, state.access, who, after=after,
                                           keepalive=settings.live_keepalive_seconds):
                    yield chunk
            finally:
                state.open -= 1

        return StreamingResponse(lines(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT"], include_in_schema=False)
    async def forward(rest: str, request: Request) -> Response:
        path = "/v1/" + rest
        name = upstream_of(path)
        if name is None:
            raise ApiError(404, "not_found", f"the console forwards no {path}")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise ApiError(413, "too_large", f"at most {MAX_BODY} bytes")
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type", "accept")}
        try:
            answer = await clients[name].request(request.method, path, params=request.query_params, content=body,
                                                 headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(502, "upstream_unavailable", f"{name} did not answer ({type(exc).__name__}); retry") from None
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "www-authenticate", "allow")}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    return api
