"""Typed outcomes for payloads that do not become requests. The edge maps each to HTTP and events."""

from __future__ import annotations


class Rejection(Exception):
    """A payload kefu cannot turn into a request. Kept raw, answered with a reason, never dropped."""

    status: int = 400
    reason: str = "unparseable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnparseablePayload(Rejection):
    status, reason = 400, "unparseable"


class MissingContent(Rejection):
    """Well-formed, but lacks what a request needs (an id, something the customer said)."""

    status, reason = 422, "missing_content"


class PayloadTooLarge(Rejection):
    status, reason = 413, "too_large"


class UnsupportedMediaType(Rejection):
    status, reason = 415, "unsupported_media_type"


class UnknownChannel(Rejection):
    status, reason = 404, "unknown_channel"


class NotARequest(Exception):
    """A valid channel message that is not a customer request (e.g. a WeChat subscribe event)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
