"""Reports replay the log once per period and keep the result: bounded work whatever callers do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.metrics.api import Busy, PeriodProjections
from services.metrics.domain.indicators import Projection

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
NOVEMBER = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
DECEMBER = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


class Loader:
    def __init__(self) -> None:
        self.calls: list[datetime] = []
        self.gate = asyncio.Event()

    async def __call__(self, since: datetime) -> Projection:
        self.calls.append(since)
        await self.gate.wait()
        return Projection(departments=("business",), keep_all=True)


async def test_parallel_calls_for_a_period_share_one_replay_and_a_closed_period_is_kept() -> None:
    load = Loader()
    kept = PeriodProjections(load, concurrency=2, queue=8, kept=4)
    calls = [asyncio.create_task(kept.get(*NOVEMBER, now=NOW)) for _ in range(10)]
    await asyncio.sleep(0)
    load.gate.set()
    results = await asyncio.gather(*calls)
    again = await kept.get(*NOVEMBER, now=NOW + timedelta(days=30))
    assert len(load.calls) == 1 and all(r is results[0] for r in results) and again is results[0]


async def test_the_open_period_is_made_again_after_a_minute() -> None:
    load, clock = Loader(), [0.0]
    load.gate.set()
    kept = PeriodProjections(load, concurrency=2, queue=8, kept=4, clock=lambda: clock[0])
    first = await kept.get(*DECEMBER, now=NOW)
    assert await kept.get(*DECEMBER, now=NOW) is first
    clock[0] = 61.0
    assert await kept.get(*DECEMBER, now=NOW) is not first and len(load.calls) == 2


async def test_beyond_running_and_waiting_replays_callers_are_told_to_come_back() -> None:
    load = Loader()
    kept = PeriodProjections(load, concurrency=1, queue=1, kept=4)
    months = [(datetime(2026, m, 1, tzinfo=UTC), datetime(2026, m + 1, 1, tzinfo=UTC)) for m in (1, 2, 3)]
    running = [asyncio.create_task(kept.get(*months[i], now=NOW)) for i in (0, 1)]
    await asyncio.sleep(0)
    with pytest.raises(Busy):
        await kept.get(*months[2], now=NOW)
    load.gate.set()
    await asyncio.gather(*running)
    assert len(load.calls) == 2  # one ran, one waited for the slot, the third never started


async def test_the_least_recently_used_period_is_evicted() -> None:
    load = Loader()
    load.gate.set()
    kept = PeriodProjections(load, concurrency=2, queue=8, kept=2)
    months = [(datetime(2026, m, 1, tzinfo=UTC), datetime(2026, m + 1, 1, tzinfo=UTC)) for m in (1, 2, 3)]
    for month in months:
        await kept.get(*month, now=NOW)
    await kept.get(*months[0], now=NOW)  # evicted: made again
    assert len(load.calls) == 4


async def test_a_failed_replay_is_not_kept() -> None:
    async def failing(since: datetime) -> Projection:
        raise TimeoutError("NATS away")

    kept = PeriodProjections(failing, concurrency=1, queue=1, kept=2)
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await kept.get(*NOVEMBER, now=NOW)
