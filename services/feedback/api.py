"""HTTP edge of feedback: the survey page and its answers, revisit outcomes, the monthly sample."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contract.models import SurveyReplied, Timestamp
from shared.http import auth
from shared.http.auth import Principal
from shared.http.errors import ApiError, ErrorBody
from shared.http.security import Admin, Staff, audit
from shared.runtime import Late

from .domain.followup import Followup
from .domain.messages import short_ref
from .domain.page import SECURITY_HEADERS, message_page, survey_form
from .domain.survey import AnswerRefused, Survey, dissatisfied, token_ok
from .service import Feedback, FollowupConflict

SURVEY_ID = Annotated[str, Path(pattern=r"^srv_[0-9a-f]{24}$")]
REQUEST_ID = Annotated[str, Path(pattern=r"^req_[a-z2-7]{26}$")]


class SurveyLink(BaseModel):
    survey_id: str
    status: str
    expires_at: Timestamp
    link: str = Field(description="The customer's link, with its key: whoever has it can answer the survey.")


class SurveyLinks(BaseModel):
    request_id: str
    surveys: list[SurveyLink]
FOLLOWUP_ID = Annotated[str, Path(pattern=r"^fu_[0-9a-f]{20}$")]
MAX_FORM = 16 * 1024


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t: str = Field(description="The link's token (the `t` of the survey url).", max_length=128)
    rating: int = Field(description="1 (very dissatisfied) to 5 (very satisfied).")
    comment: str | None = Field(None, max_length=2000)
    reasons: list[str] = Field(default_factory=list, max_length=10)


class FollowupOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["resolved", "recurred", "unreachable"]
    note: str | None = Field(None, max_length=2000)


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)}
# the survey form posts get a page back; JSON callers get JSON
PAGE_OR_JSON: dict[str, Any] = {"content": {"text/html": {}, "application/json": {}}}
JSON_ERROR: dict[str, Any] = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


def build_api(feedback: Late[Feedback]) -> APIRouter:
    api = APIRouter()

    async def survey_for(survey_id: str, token: str | None) -> Survey:
        """The survey, if the link is genuine. Unknown ids and wrong tokens look the same: 404."""
        found = await feedback().store.surveys.get(survey_id)
        if found is None or not token_ok(feedback().secret, survey_id, token):
            raise ApiError(404, "not_found", "no such survey")
        return found[0]

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)

    @api.get("/v1/surveys/{survey_id}", tags=["surveys"], response_class=HTMLResponse,
             responses={404: JSON_ERROR | {"description": "unknown survey or wrong token"},
                        410: {"content": {"text/html": {}}, "description": "expired (a page saying so)"}},
             summary="The survey page a customer opens from their link (`?t=` is the link's token)")
    async def survey_page(survey_id: SURVEY_ID, t: Annotated[str | None, Query(max_length=128)] = None) -> Response:
        survey = await survey_for(survey_id, t)
        if survey.status == "answered":
            return html(message_page(survey.language, "answered"))
        if survey.status == "expired" or datetime.now(UTC) >= survey.expires_at:
            return html(message_page(survey.language, "expired"), 410)
        view = (await feedback().store.views.get(survey.request_id) or (None, 0))[0]
        return html(survey_form(
            language=survey.language, survey_id=survey_id, token=t or "",
            customer_name=view.customer.name if view else None, ref=short_ref(survey.request_id),
            summary=view.summary if view else "", reasons=feedback().reasons(survey.language)))

    @api.post("/v1/surveys/{survey_id}", tags=["surveys"],
              summary="Answer a survey: JSON, or the page's form post. One answer per survey.",
              responses={200: PAGE_OR_JSON | {"description": "recorded"},
                         404: {"model": ErrorBody, "description": "unknown survey or wrong token"},
                         409: PAGE_OR_JSON | {"description": "already answered"},
                         410: PAGE_OR_JSON | {"description": "expired"},
                         413: {"model": ErrorBody, "description": "answer too large"},
                         422: PAGE_OR_JSON | {"description": "rating outside 1-5"}})
    async def answer_survey(survey_id: SURVEY_ID, request: Request) -> Response:
        is_form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        raw = await request.body()
        if len(raw) > MAX_FORM:
            raise ApiError(413, "too_large", "answer too large")
        try:
            answer = _form(raw) if is_form else Answer.model_validate_json(raw)
        except (ValidationError, ValueError) as exc:
            if is_form:
                return await _form_error(survey_id, raw)
            raise ApiError(422, "invalid_body", str(exc).splitlines()[0][:300]) from None
        survey = await survey_for(survey_id, answer.t)
        try:
            await feedback().check_answer(survey, answer.rating, answer.reasons)
        except AnswerRefused as refused:
            if is_form:
                key = {409: "answered", 410: "expired"}.get(refused.status, "invalid")
                return html(message_page(survey.language, key), refused.status)
            raise ApiError(refused.status, refused.error, refused.detail) from None
        first = await feedback().submit(SurveyReplied(
            survey_id=survey_id, channel=survey.channel, rating=answer.rating, comment=answer.comment,
            reasons=answer.reasons, via="page"))
        if not first:
            if is_form:
                return html(message_page(survey.language, "answered"), 409)
            raise ApiError(409, "already_answered", "this survey has been answered")
        low = dissatisfied(answer.rating, feedback().config.survey.reopen_at_or_below)
        if is_form:
            return html(message_page(survey.language, "thanks_low" if low else "thanks"))
        return JSONResponse({"status": "answered", "survey_id": survey_id, "rating": answer.rating,
                             "reopened": low})

    async def _form_error(survey_id: str, raw: bytes) -> Response:
        token = _field(raw, "t")
        survey = await survey_for(survey_id, token)
        return html(message_page(survey.language, "invalid"), 422)

    async def followup_for(followup_id: str, who: Principal) -> Followup:
        """The revisit, if `who` may handle it (staff of the request's department, or admins)."""
        found = await feedback().store.followups.get(followup_id)
        if found is not None:
            view = (await feedback().store.views.get(found[0].request_id) or (None, 0))[0]
            if auth.may_act_on_request(who, department=view.department if view else None):
                return found[0]
        raise ApiError(404, "not_found", f"no revisit {followup_id}")

    @api.post("/v1/followups/{followup_id}", tags=["revisits"], responses=ERRORS,
              summary="Record a revisit's outcome (resolved / recurred / unreachable); recurred reopens the request")
    async def followup(followup_id: FOLLOWUP_ID, body: FollowupOutcome, who: Staff) -> dict[str, Any]:
        await followup_for(followup_id, who)
        try:
            done = await feedback().complete_followup(followup_id, outcome=body.outcome, actor=who.subject,
                                                      note=body.note)
        except KeyError:
            raise ApiError(404, "not_found", f"no revisit {followup_id}") from None
        except FollowupConflict as exc:
            raise ApiError(409, "already_completed", str(exc)) from None
        return done.model_dump(mode="json")

    @api.get("/v1/followups/{followup_id}", tags=["revisits"], responses=ERRORS,
             summary="A revisit: when it is due, its outcome")
    async def get_followup(followup_id: FOLLOWUP_ID, who: Staff) -> dict[str, Any]:
        return (await followup_for(followup_id, who)).model_dump(mode="json")

    @api.get("/v1/requests/{request_id}/surveys", tags=["surveys"], response_model=SurveyLinks,
             responses={404: {"model": ErrorBody}},
             summary="A request's surveys with their links, as the customer got them (admins; each read is "
             "recorded on kefu.audit.survey.read): to resend a link, or to answer for a customer who called")
    async def request_surveys(request_id: REQUEST_ID, who: Admin, request: Request) -> SurveyLinks:
        found = await feedback().store.views.get(request_id)
        if found is None:
            raise ApiError(404, "not_found", f"no request {request_id} resolved yet")
        await audit(request, who, "survey.read", request_id)
        links = []
        for survey_id in found[0].survey_ids:
            survey = await feedback().store.surveys.get(survey_id)
            if survey is not None:
                links.append(SurveyLink(survey_id=survey_id, status=survey[0].status, expires_at=survey[0].expires_at,
                                        link=feedback().url(survey_id)))
        return SurveyLinks(request_id=request_id, surveys=links)

    @api.post("/v1/samples/monthly", tags=["surveys"],
              responses=ERRORS,
              summary="Run the monthly sampled survey for a month now (admins; it also runs by itself on the "
              "1st). It surveys customers of every department, so no supervisor may start it.")
    async def sample(month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")],
                     _: Admin) -> dict[str, Any]:
        chosen = await feedback().sample_month(month)
        return {"month": month, "surveyed": len(chosen), "request_ids": chosen}

    return api


def _field(raw: bytes, name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=50).get(name)
    return values[0] if values else None


def _form(raw: bytes) -> Answer:
    from urllib.parse import parse_qs

    fields = parse_qs(raw.decode("utf-8", "strict"), keep_blank_values=True, max_num_fields=50)
    rating = (fields.get("rating") or [""])[0]
    if not re.fullmatch(r"[1-5]", rating):
        raise ValueError("rating must be 1 to 5")
    return Answer(t=(fields.get("t") or [""])[0], rating=int(rating), comment=next(iter(fields.get("comment") or []), None),
                  reasons=fields.get("reasons", []))
