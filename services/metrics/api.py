"""HTTP edge of metrics: weekly and monthly reports (JSON or CSV) and drill-downs; finding requests
again (GET /v1/requests, from the lookup index the replay keeps)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from shared.contract import subjects as s
from shared.http import auth
from shared.http.errors import ApiError, ErrorBody
from shared.http.security import Staff, Supervisor, audit
from shared.nats.logreader import LogReader
from shared.runtime import Runtime

from .domain.indicators import Projection, decode_event
from .domain.reports import Drilldown, drilldown, month_bounds, report, to_csv, week_bounds
from .lookup import CursorError, LookupIndex, Scope
from .lookup import Query as Lookup

JSON_OR_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/csv": {}}, "description": "the report (format=json or csv)"}}
WEEK_PATTERN = r"^(19[7-9]\d|2\d{3})-W(0[1-9]|[1-4]\d|5[0-3])$"
MONTH_PATTERN = r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$"
WEEK = Annotated[str, Query(pattern=WEEK_PATTERN, examples=["2026-W48"])]
MONTH = Annotated[str, Query(pattern=MONTH_PATTERN, examples=["2026-11"])]
FORMAT = Annotated[Literal["json", "csv"], Query()]
REPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "not a period, or one outside the event log (out_of_range)"},
    429: {"model": ErrorBody, "description": "too many reports being made at once (see Retry-After)"}}


async def period_projection(runtime: Runtime, departments: tuple[str, ...], since: datetime) -> Projection:
    """Replay the log from `since` to its current end into a projection that keeps every fact
    (batched direct gets: shared/nats/logreader.py)."""
    assert runtime.js is not None
    projection = Projection(departments=departments, keep_all=True)
    last = (await runtime.js.stream_info(s.STREAM_EVENTS)).state.last_seq
    reader = LogReader(runtime.broker.connection, s.STREAM_EVENTS, timeout=10)
    try:
        entries = await reader.batch(start_time=since)
        while entries:
            for entry in entries:
                if (event := decode_event(entry.data)) is not None:  # else skipped, as the replay does
                    projection.apply(entry.subject, event)
            if entries[-1].seq >= last:
                break
            entries = await reader.batch(seq=entries[-1].seq + 1)
    finally:
        await reader.close()
    return projection


class Busy(Exception):
    """Too many reports being made: the caller retries later (429)."""


@dataclass
class _Kept:
    projection: Projection
    until: float | None  # monotonic expiry; None: a closed period, kept until evicted


class PeriodProjections:
    """Period projections, each made by one replay of the log and kept for reuse: a closed period's
    until evicted (least recently used first; its events no longer change), the open period's for a
    minute. Concurrent calls for one period share one replay; at most `concurrency` replays run at
    once and `queue` more wait, beyond which callers get Busy. So no caller can make the service
    replay the log more than a bounded number of times, however often or in parallel it asks."""

    SETTLE = timedelta(hours=1)  # events may arrive a little after their time: a period closes an hour after it ends
    OPEN_FOR = 60.0

    def __init__(self, load: Callable[[datetime], Awaitable[Projection]], *, concurrency: int, queue: int,
                 kept: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._load, self._clock = load, clock
        self._slots = asyncio.Semaphore(concurrency)
        self._capacity = concurrency + queue
        self._kept: OrderedDict[tuple[datetime, datetime], _Kept] = OrderedDict()
        self._keep = kept
        self._making: dict[tuple[datetime, datetime], asyncio.Future[Projection]] = {}

    async def get(self, since: datetime, end: datetime, *, now: datetime) -> Projection:
        key = (since, end)
        hit = self._kept.get(key)
        if hit is not None and (hit.until is None or hit.until > self._clock()):
            self._kept.move_to_end(key)
            return hit.projection
        if key in self._making:
            return await asyncio.shield(self._making[key])
        if len(self._making) >= self._capacity:
            raise Busy
        made: asyncio.Future[Projection] = asyncio.get_running_loop().create_future()
        self._making[key] = made
        try:
            async with self._slots:
                projection = await self._load(since)
            closed = end + self.SETTLE <= now
            self._kept[key] = _Kept(projection, None if closed else self._clock() + self.OPEN_FOR)
            while len(self._kept) > self._keep:
                self._kept.popitem(last=False)
            made.set_result(projection)
            return projection
        except BaseException as exc:
            made.set_exception(exc)
            made.exception()  # retrieved: callers sharing it see it raised
            raise
        finally:
            del self._making[key]


def build_api(runtime: Runtime, *, departments: tuple[str, ...], tz: ZoneInfo, lookback_days: int,
              retention_days: int, concurrency: int = 2, queue: int = 8, kept: int = 6) -> APIRouter:
    api = APIRouter()
    lookback = timedelta(days=lookback_days)
    projections = PeriodProjections(lambda since: period_projection(runtime, departments, since),
                                    concurrency=concurrency, queue=queue, kept=kept)

    def _week(week: str) -> tuple[datetime, datetime]:
        try:
            return week_bounds(week, tz)
        except ValueError:  # e.g. W53 of a year with 52 ISO weeks
            raise ApiError(422, "invalid_query", f"{week} is not an ISO week") from None

    async def projection_for(start: datetime, end: datetime) -> Projection:
        now = datetime.now(UTC)
        earliest = now - timedelta(days=retention_days)
        if start > now:
            raise ApiError(422, "out_of_range", "that period has not started yet")
        if end <= earliest:
            raise ApiError(422, "out_of_range", f"the event log keeps {retention_days} days "
                           f"(KEFU_RETENTION_EVENTS_DAYS): periods ending after {earliest.date()} only")
        try:
            return await projections.get(max(start - lookback, earliest), end, now=now)
        except Busy:
            raise ApiError(429, "busy", "reports are being made for other callers; retry shortly",
                           headers={"Retry-After": "5"}) from None

    async def respond(period: str, start: datetime, end: datetime, fmt: str) -> Response:
        data = report(await projection_for(start, end), period=period, start=start, end=end, now=datetime.now(UTC))
        if fmt == "csv":
            return Response(to_csv(data), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="kefu-{period}.csv"'})
        return JSONResponse(data)

    @api.get("/v1/reports/weekly", tags=["reports"], responses=REPORT_ERRORS | JSON_OR_CSV,
             summary="Each indicator per department for an ISO week, departments ranked, top complaint topics")
    async def weekly(week: WEEK, _: Supervisor,
                     format: FORMAT = "json") -> Response:  # noqa: A002 - the API's query parameter
        start, end = _week(week)
        return await respond(week, start, end, format)

    @api.get("/v1/reports/monthly", tags=["reports"], responses=REPORT_ERRORS | JSON_OR_CSV,
             summary="The same for a calendar month")
    async def monthly(month: MONTH, _: Supervisor,
                      format: FORMAT = "json") -> Response:  # noqa: A002 - the API's query parameter
        start, end = month_bounds(month, tz)
        return await respond(month, start, end, format)

    @api.get("/v1/reports/drilldown", tags=["reports"], responses=REPORT_ERRORS,
             summary="The request ids behind an indicator in a period (e.g. the breached ones)")
    async def drill(indicator: Annotated[Drilldown, Query()], who: Supervisor,
                    week: Annotated[str | None, Query(pattern=WEEK_PATTERN)] = None,
                    month: Annotated[str | None, Query(pattern=MONTH_PATTERN)] = None,
                    department: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        if (week is None) == (month is None):
            raise ApiError(422, "invalid_query", "give exactly one of week or month")
        if not auth.may_see_department(who, department):
            raise ApiError(403, "forbidden", "supervisors drill down into their own departments (department=...)")
        start, end = _week(week) if week else month_bounds(month or "", tz)
        projection = await projection_for(start, end)
        ids = drilldown(projection, indicator=indicator, start=start, end=end, department=department)
        return {"indicator": indicator, "period": week or month, "department": department, "request_ids": ids}

    return api


LOOKUP_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 422, 503)}


class Found(BaseModel):
    request_id: str
    received_at: str
    channel: str | None
    customer_id: str | None
    ref: str
    state: str | None
    department: str | None
    queue: str | None
    agent_id: str | None


class FoundPage(BaseModel):
    requests: list[Found]
    cursor: str | None = Field(description="Pass it back as `cursor` for the next page; null on the last one.")


def build_lookup_api(index: LookupIndex) -> APIRouter:
    """GET /v1/requests: finding requests again (docs/conversations.md#finding-requests-again)."""
    api = APIRouter()

    @api.get("/v1/requests", tags=["requests"], responses=LOOKUP_ERRORS, response_model=FoundPage,
             summary="Find requests by customer, contact (phone, e-mail, openid: normalised like intake), ref, "
             "state, queue or words (q), newest first, a page at a time; only those the caller may read. "
             "Each search is recorded on kefu.audit.request.search. Served by metrics, which keeps the index from "
             "its replay of the event log: a request received a moment ago may not be found yet.")
    async def find_requests(
        who: Staff, request: Request,
        customer_id: Annotated[str | None, Query(max_length=100)] = None,
        contact: Annotated[str | None, Query(max_length=200)] = None,
        ref: Annotated[str | None, Query(pattern=r"^\[?#?[A-Za-z2-7]{8}\]?$")] = None,
        state: Literal["queued", "offered", "accepted", "pending", "resolved", "closed"] | None = None,
        queue: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = None,
        q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> FoundPage:
        scope = Scope(everything=who.is_admin, departments=tuple(sorted(who.departments)),
                      agent_id=who.subject if who.role == "agent" else None)
        try:
            rows, after = index.find(Lookup(customer_id=customer_id, contact=contact, ref=ref, state=state, queue=queue,
                                            q=q, limit=limit, cursor=cursor), scope)
        except CursorError as exc:
            raise ApiError(422, "invalid_cursor", str(exc)) from None
        await audit(request, who, "request.search", ",".join(r["request_id"] for r in rows) or "-")
        return FoundPage(requests=[Found(**r) for r in rows], cursor=after)

    return api
