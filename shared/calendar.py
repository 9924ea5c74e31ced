"""Working days and business time: the clocks SLA deadlines run on.

`ChineseWorkCalendar` follows the State Council's public holidays and make-up working days (调休)
from the `chinesecalendar` package; years it does not know yet fall back to Monday-Friday.
`BusinessClock` counts only the business hours of working days; `ContinuousClock` counts all
time (urgent requests run 24x7). Both are pure: no "now", no I/O.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

import chinese_calendar
from pydantic import BaseModel, ConfigDict, field_validator

MAX_DAYS = 3700
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|wd)\s*$")


@functools.lru_cache(maxsize=1024)  # the few durations in config/, asked for on every request
def parse_duration(text: str | int | float, workday: timedelta) -> timedelta:
    """`90s`, `30m`, `4h`, `28d` (calendar days), `2wd` (working days, each as long as the business
    day `workday`). A bare number is minutes."""
    if isinstance(text, int | float):
        return timedelta(minutes=text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 4h, 28d or 2wd")
    value, unit = float(match.group(1)), match.group(2)
    units = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1),
             "d": timedelta(days=1), "wd": workday}
    return units[unit] * value  # ten years of calendar: a clock with no working days at all is a configuration error


class WorkCalendar(Protocol):
    def is_workday(self, day: date) -> bool: ...


class WeekdayCalendar:
    """Monday to Friday."""

    def is_workday(self, day: date) -> bool:
        return day.weekday() < 5


@functools.lru_cache(maxsize=20_000)  # decades of days; asked for every deadline of every request
def _chinese_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package has no data for
        return WeekdayCalendar().is_workday(day)


class ChineseWorkCalendar:
    """Mainland China: public holidays off, make-up Saturdays and Sundays worked."""

    def is_workday(self, day: date) -> bool:
        return _chinese_workday(day)


CALENDARS: dict[str, type[WorkCalendar]] = {"chinese": ChineseWorkCalendar, "weekdays": WeekdayCalendar}


class Clock(Protocol):
    def add(self, start: datetime, amount: timedelta) -> datetime: ...

    def between(self, start: datetime, end: datetime) -> timedelta: ...


class ContinuousClock:
    def add(self, start: datetime, amount: timedelta) -> datetime:
        return start + max(amount, timedelta(0))

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, timedelta(0))


@dataclass(frozen=True)
class BusinessClock:
    calendar: WorkCalendar
    opens: time
    closes: time
    tz: ZoneInfo

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        if not self.calendar.is_workday(day):
            return None
        return (
            datetime.combine(day, self.opens, tzinfo=self.tz).astimezone(UTC),
            datetime.combine(day, self.closes, tzinfo=self.tz).astimezone(UTC),
        )

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of business time after `start` has passed."""
        if amount <= timedelta(0):
            return start
        t = start.astimezone(UTC)
        remaining = amount
        day = start.astimezone(self.tz).date()
        for _ in range(MAX_DAYS):
            window = self._window(day)
            if window is not None:
                opens, closes = window
                t = max(t, opens)
                if t < closes:
                    if remaining <= closes - t:
                        return (t + remaining).astimezone(start.tzinfo)
                    remaining -= closes - t
            day += timedelta(days=1)
        raise ValueError(f"no working time within {MAX_DAYS} days of {start.isoformat()}")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in [start, end)."""
        if end <= start:
            return timedelta(0)
        total = timedelta(0)
        day = start.astimezone(self.tz).date()
        last = end.astimezone(self.tz).date()
        while day <= last:
            window = self._window(day)
            if window is not None:
                lo, hi = max(window[0], start), min(window[1], end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


class BusinessHoursConfig(BaseModel):
    """The `business_hours` section of config/sla.yaml: one calendar for SLA clocks and revisits."""

    model_config = ConfigDict(extra="forbid")
    opens: time = time(9)
    closes: time = time(18)
    timezone: str = "Asia/Shanghai"
    calendar: Literal["chinese", "weekdays"] = "chinese"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        ZoneInfo(v)
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def workday(self) -> timedelta:
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def clock(self) -> BusinessClock:
        return BusinessClock(CALENDARS[self.calendar](), self.opens, self.closes, self.tz)


class _SlaFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    business_hours: BusinessHoursConfig = BusinessHoursConfig()


def business_hours(config_dir: Path) -> BusinessHoursConfig:
    """Business hours and calendar as configured in config/sla.yaml."""
    from .config import load_yaml_model

    return load_yaml_model(config_dir / "sla.yaml", _SlaFile).business_hours
