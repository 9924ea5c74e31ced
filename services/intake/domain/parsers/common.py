"""Helpers every parser uses: bounded JSON decoding, validation errors in words, hints, times."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.contract.enums import Category, Priority
from shared.contract.models import Hints

from ..errors import MissingContent, UnparseablePayload
from ..text import decode_utf8

MAX_JSON_DEPTH = 32
MAX_ID_LENGTH = 256

M = TypeVar("M", bound=BaseModel)


def attested(verified: list[str]) -> list[str]:
    """A portal's or app's `verified` list: the contact kinds it checked (phone, email)."""
    return sorted({v for v in verified if v in ("phone", "email")})


class Payload(BaseModel):
    """Base for channel payload models: unknown fields ignored, ids and numbers coerced to text."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)


def load_json_object(raw: bytes, what: str) -> dict[str, Any]:
    text = decode_utf8(raw, what)
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise UnparseablePayload(f"{what} is nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise UnparseablePayload(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise UnparseablePayload(f"{what} must be a JSON object, not {type(data).__name__}")
    if _depth(data) > MAX_JSON_DEPTH:
        raise UnparseablePayload(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def validate(model: type[M], data: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        missing = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "missing"]
        if missing:
            raise MissingContent(f"{what} lacks required field(s): {', '.join(missing)}") from exc
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise UnparseablePayload(f"{what} has invalid field(s): {problems}") from exc


def require_id(value: str | None, field: str, what: str) -> str:
    if value is None or not value.strip():
        raise MissingContent(f"{what} lacks {field}")
    value = value.strip()
    if len(value) > MAX_ID_LENGTH:
        raise UnparseablePayload(f"{what} {field} is longer than {MAX_ID_LENGTH} characters")
    if any(ord(c) < 32 for c in value):
        raise UnparseablePayload(f"{what} {field} contains control characters")
    return value


_CATEGORY_WORDS = {
    "inquiry": Category.inquiry, "enquiry": Category.inquiry, "question": Category.inquiry,
    "consult": Category.inquiry, "咨询": Category.inquiry, "查询": Category.inquiry,
    "suggestion": Category.suggestion, "feedback": Category.suggestion, "建议": Category.suggestion,
    "complaint": Category.complaint, "complain": Category.complaint, "投诉": Category.complaint,
    "help": Category.help, "support": Category.help, "fault": Category.help, "repair": Category.help,
    "求助": Category.help, "报修": Category.help, "故障": Category.help,
}
_URGENCY_WORDS = {
    "urgent": Priority.urgent, "emergency": Priority.urgent, "critical": Priority.urgent,
    "紧急": Priority.urgent, "high": Priority.important, "important": Priority.important,
    "重要": Priority.important, "normal": Priority.normal, "low": Priority.normal,
    "medium": Priority.normal, "一般": Priority.normal,
}


def hints(category: str | None, urgency: str | None) -> Hints:
    """Adapters' own words for category and urgency, mapped where known, ignored where not."""
    c = _CATEGORY_WORDS.get((category or "").strip().lower())
    u = _URGENCY_WORDS.get((urgency or "").strip().lower())
    return Hints(category=c, urgency=u)


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class ParseContext:
    """What a parser needs from outside: the channel's local time zone, phone region, and now."""

    now: datetime
    tz: tzinfo
    region: str = "CN"
    mail_authserv_ids: tuple[str, ...] = ()  # receiving mail servers whose Authentication-Results count


def aware(value: datetime | None, ctx: ParseContext) -> datetime | None:
    """Naive times are the channel's local time; implausible ones (before 2000, a day ahead) dropped."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=ctx.tz)
    if value < EARLIEST or value > ctx.now + FUTURE_SLACK:
        return None
    return value


def parse_time(text: str | None, ctx: ParseContext) -> datetime | None:
    if not text:
        return None
    try:
        return aware(datetime.fromisoformat(text.strip().replace("Z", "+00:00")), ctx)
    except ValueError:
        return None


def from_unix(seconds: str | int | float | None, ctx: ParseContext) -> datetime | None:
    if seconds is None or seconds == "":
        return None
    try:
        return aware(datetime.fromtimestamp(float(seconds), UTC), ctx)
    except (ValueError, OverflowError, OSError):
        return None
