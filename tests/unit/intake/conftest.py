from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.intake.domain.parsers import ParseContext

DATA = Path(__file__).parents[2] / "data"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def ctx() -> ParseContext:
    return ParseContext(now=NOW, tz=ZoneInfo("Asia/Shanghai"), region="CN")


def sample(*parts: str) -> bytes:
    return DATA.joinpath(*parts).read_bytes()
