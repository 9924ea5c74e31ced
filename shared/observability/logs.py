"""Structured logs: one JSON object per line. Never log personal data in clear: ids and reasons only."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName", "color_message"}


# Second line of defence: what looks like personal data or a credential is masked in every line,
# whatever code logged it (ours, a library's exception text quoting a payload ...).
_EDGE_L, _EDGE_R = r"(?<![0-9A-Za-z_])", r"(?![0-9A-Za-z_])"
_MASKS = [
    (re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"), "Bearer <token>"),
    (re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]+"), "<token>"),  # a JWT
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    # mainland id numbers (18 characters) before phone numbers (a run of digits inside one)
    (re.compile(_EDGE_L + r"\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])\d{2}\d{3}[\dXx]" + _EDGE_R), "<id-number>"),
    # mobile numbers with or without +86 / 0086, and E.164 numbers
    (re.compile(_EDGE_L + r"(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}" + _EDGE_R), "<phone>"),
    (re.compile(r"\+\d{8,15}" + _EDGE_R), "<phone>"),
    # landlines: 0xx-xxxxxxxx
    (re.compile(_EDGE_L + r"0\d{2,3}-\d{7,8}" + _EDGE_R), "<phone>"),
]


# Every pattern above needs one of these to match (a mobile number a 1, an id number a 19 or 20,
# a landline a 0, an E.164 number a +, an address an @, a JWT eyJ, a bearer token the word):
# text without any of them (kefu's ids: base32, a-z and 2-7) is returned as it is, unscanned.
_NEEDED = re.compile(r"[01@+]|eyJ|(?i:bearer)")


def mask(text: str) -> str:
    if _NEEDED.search(text) is None:
        return text
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: object) -> object:
    return mask(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _clean(value if isinstance(value, str | int | float | bool | None) else repr(value))
        if record.exc_info:
            out["exc"] = mask(self.formatException(record.exc_info))
        # JSON escapes CR, LF and other control characters: one record is always one line
        return to_json(out).decode()


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
