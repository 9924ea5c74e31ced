from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.calendar import BusinessClock, ChineseWorkCalendar, ContinuousClock, WeekdayCalendar

SH = ZoneInfo("Asia/Shanghai")
CAL = ChineseWorkCalendar()
CLOCK = BusinessClock(CAL, time(9), time(18), SH)


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.mark.parametrize("day", [date(2026, 10, d) for d in range(1, 8)])
def test_national_day_golden_week_2026_is_off(day: date) -> None:
    assert not CAL.is_workday(day)


@pytest.mark.parametrize("day", [date(2026, 9, 20), date(2026, 10, 10)])
def test_make_up_working_days_2026_are_worked(day: date) -> None:
    assert day.weekday() >= 5 and CAL.is_workday(day)


def test_ordinary_weekend_is_off_and_weekday_on() -> None:
    assert not CAL.is_workday(date(2026, 11, 28)) and CAL.is_workday(date(2026, 11, 24))


def test_unknown_year_falls_back_to_weekdays() -> None:
    assert CAL.is_workday(date(2099, 3, 2)) and not CAL.is_workday(date(2099, 3, 1))


def test_thirty_business_minutes_from_friday_evening_land_on_monday_morning() -> None:
    assert CLOCK.add(at(2026, 11, 27, 17, 50), timedelta(minutes=30)) == at(2026, 11, 30, 9, 20)


def test_a_request_on_the_eve_of_national_day_is_due_after_the_holiday_on_the_make_up_saturday() -> None:
    # Wednesday 30 September 17:00, one working day (9 h): 1 h on the 30th, then 1-7 Oct off,
    # Thursday 8 and Friday 9 are worked, so 8 h more end at 17:00 on Thursday 8 October
    assert CLOCK.add(at(2026, 9, 30, 17), timedelta(hours=9)) == at(2026, 10, 8, 17)
    # a make-up Saturday counts: from Friday 9 Oct 17:00, two business hours end on Saturday 10 Oct
    assert CLOCK.add(at(2026, 10, 9, 17), timedelta(hours=2)) == at(2026, 10, 10, 10)


def test_business_time_between_skips_nights_and_holidays() -> None:
    assert CLOCK.between(at(2026, 9, 30, 17), at(2026, 10, 8, 10)) == timedelta(hours=2)
    assert CLOCK.between(at(2026, 11, 24, 20), at(2026, 11, 25, 8)) == timedelta(0)


def test_start_before_opening_counts_from_opening() -> None:
    assert CLOCK.add(at(2026, 11, 24, 6), timedelta(minutes=30)) == at(2026, 11, 24, 9, 30)


def test_continuous_clock() -> None:
    assert ContinuousClock().add(at(2026, 10, 1, 23), timedelta(hours=2)) == at(2026, 10, 2, 1)


starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
amounts = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


@given(starts, amounts)
def test_due_never_precedes_start(start: datetime, amount: timedelta) -> None:
    assert CLOCK.add(start, amount) >= start


@given(starts, amounts, amounts)
def test_more_business_time_never_gives_an_earlier_due_time(start: datetime, a: timedelta, b: timedelta) -> None:
    small, large = sorted((a, b))
    assert CLOCK.add(start, small) <= CLOCK.add(start, large)


@given(starts, st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=20)))
def test_between_inverts_add(start: datetime, amount: timedelta) -> None:
    assert CLOCK.between(start, CLOCK.add(start, amount)) == amount


@given(starts, amounts)
def test_weekday_clock_is_monotonic_too(start: datetime, amount: timedelta) -> None:
    clock = BusinessClock(WeekdayCalendar(), time(8, 30), time(17, 30), ZoneInfo("Europe/Berlin"))
    assert clock.add(start, amount) >= start
    assert clock.between(start, clock.add(start, amount)) == amount
