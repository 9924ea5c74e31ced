"""HTTP edge of metrics: weekly and monthly reports (JSON or CSV) and drill-downs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

import nats.errors
from shared import subjects as s
from shared import auth
from shared.runtime import ApiError, Runtime, Supervisor

from .domain.indicators import Projection
from .domain.reports import DRILLDOWNS, drilldown, month_bounds, report, to_csv, week_bounds

JSON_OR_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/csv": {}}, "description": "the report (format=json or csv)"}}
WEEK_PATTERN = r"^(19[7-9]\d|2\d{3})-W(0[1-9]|[1-4]\d|5[0-3])$"
MONTH_PATTERN = r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$"
WEEK = Annotated[str, Query(pattern=WEEK_PATTERN, examples=["2026-W48"])]
MONTH = Annotated[str, Query(pattern=MONTH_PATTERN, examples=["2026-11"])]
FORMAT = Annotated[Literal["json", "csv"], Query()]


async def period_projection(runtime: Runtime, departments: tuple[str, ...], since: datetime) -> Projection:
    """Replay the log from `since` to now into a projection that keeps every fact."""
    assert runtime.js is not None
    projection = Projection(departments=departments, keep_all=True)
    last = (await runtime.js.stream_info(s.STREAM_METRICS)).state.last_seq
    if last == 0:
        return projection
    sub = await runtime.js.pull_subscribe(
        s.EVENTS_ALL, stream=s.STREAM_METRICS,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since.isoformat(),
                              ack_policy=AckPolicy.NONE, inactive_threshold=60.0),
    )
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            for msg in batch:
                try:
                    projection.apply(msg.subject, json.loads(msg.data))
                except ValueError:
                    continue
            if batch and batch[-1].metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return projection


def build_api(runtime: Runtime, *, departments: tuple[str, ...], tz: ZoneInfo, lookback_days: int) -> APIRouter:
    api = APIRouter()
    lookback = timedelta(days=lookback_days)

    def _week(week: str) -> tuple[datetime, datetime]:
        try:
            return week_bounds(week, tz)
        except ValueError:  # e.g. W53 of a year with 52 ISO weeks
            raise ApiError(422, "invalid_query", f"{week} is not an ISO week") from None

    async def respond(period: str, start: datetime, end: datetime, fmt: str) -> Response:
        data = report(await period_projection(runtime, departments, start - lookback), period=period, start=start,
                      end=end)
        if fmt == "csv":
            return Response(to_csv(data), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="kefu-{period}.csv"'})
        return JSONResponse(data)

    @api.get("/v1/reports/weekly", tags=["reports"], responses=JSON_OR_CSV,
             summary="Each indicator per department for an ISO week, departments ranked, top complaint topics")
    async def weekly(week: WEEK, _: Supervisor, format: FORMAT = "json") -> Response:
        start, end = _week(week)
        return await respond(week, start, end, format)

    @api.get("/v1/reports/monthly", tags=["reports"], responses=JSON_OR_CSV, summary="The same for a calendar month")
    async def monthly(month: MONTH, _: Supervisor, format: FORMAT = "json") -> Response:
        start, end = month_bounds(month, tz)
        return await respond(month, start, end, format)

    @api.get("/v1/reports/drilldown", tags=["reports"],
             summary="The request ids behind an indicator in a period (e.g. the breached ones)")
    async def drill(indicator: Annotated[Literal[DRILLDOWNS], Query()], who: Supervisor,
                    week: Annotated[str | None, Query(pattern=WEEK_PATTERN)] = None,
                    month: Annotated[str | None, Query(pattern=MONTH_PATTERN)] = None,
                    department: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        if (week is None) == (month is None):
            raise ApiError(422, "invalid_query", "give exactly one of week or month")
        if not auth.may_see_department(who, department):
            raise ApiError(403, "forbidden", "supervisors drill down into their own departments (department=...)")
        start, end = _week(week) if week else month_bounds(month or "", tz)
        projection = await period_projection(runtime, departments, start - lookback)
        ids = drilldown(projection, indicator=indicator, start=start, end=end, department=department)
        return {"indicator": indicator, "period": week or month, "department": department, "request_ids": ids}

    return api
