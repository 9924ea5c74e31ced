"""`make bench`'s in-process core measurement runs (it measures the same functions the services
call, so a change of their signatures must reach it; the figures themselves are not asserted)."""

from __future__ import annotations

from devtools.bench import kefu_items
from devtools.bench_core import core_cpu_ms


def test_the_core_measurement_runs_over_every_channels_payloads() -> None:
    cost = core_cpu_ms(kefu_items(40, "unit"))
    assert set(cost) == {"intake", "routing"} and all(ms > 0 for ms in cost.values())
