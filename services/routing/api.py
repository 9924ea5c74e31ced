"""HTTP edge of routing (first version): a request's state and full history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from shared.runtime import Admin, ApiError

from .domain.record import RequestRecord
from .service import Routing


def build_api(routing: dict[str, Routing]) -> APIRouter:
    api = APIRouter()

    @api.get(
        "/v1/requests/{request_id}",
        response_model=RequestRecord,
        tags=["requests"],
        summary="A request's state, assignment and full history",
    )
    async def get_request(request_id: Annotated[str, Path(pattern=r"^req_[a-z2-7]{26}$")], _: Admin) -> RequestRecord:
        found = await routing["routing"].store.get(request_id)
        if found is None:
            raise ApiError(404, "not_found", f"no request {request_id}")
        return found[0]

    return api
