"""Counting the event log into indicators. Pure: events in, numbers out; no broker, no clock."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared import subjects as s
from shared.enums import Category, Channel, Priority

REJECTION_REASONS = ("unparseable", "missing_content", "too_large", "unsupported_media_type", "unknown_channel")


def bounded(value: Any, allowed: set[str] | tuple[str, ...], other: str) -> str:
    """Label values come from bounded sets only: anything else is folded into `other`."""
    return value if isinstance(value, str) and value in allowed else other


@dataclass
class Tally:
    departments: tuple[str, ...]
    received: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    assigned: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def apply(self, subject: str, event: dict[str, Any]) -> None:
        channels = {c.value for c in Channel}
        if subject == s.REQUEST_RECEIVED:
            self.received[bounded(event.get("channel"), channels, "unknown")] += 1
        elif subject == s.REQUEST_REJECTED:
            key = (
                bounded(event.get("channel"), channels, "unknown"),
                bounded(event.get("reason"), REJECTION_REASONS, "other"),
            )
            self.rejected[key] += 1
        elif subject == s.REQUEST_ASSIGNED:
            key = (
                bounded(event.get("category"), {c.value for c in Category}, "unknown"),
                bounded(event.get("priority"), {p.value for p in Priority}, "unknown"),
                bounded(event.get("department"), self.departments, "other"),
            )
            self.assigned[key] += 1
