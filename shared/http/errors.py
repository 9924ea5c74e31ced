"""kefu's one error shape, `{"error", "detail"}`, raised as `ApiError` anywhere in a request.
"""

from __future__ import annotations

from pydantic import BaseModel


class ApiError(Exception):
    """An HTTP error answered as `{"error": ..., "detail": ...}`."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


class ErrorBody(BaseModel):
    """Every error kefu answers: a machine-readable `error` and a human-readable `detail`."""

    error: str
    detail: str
