from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.natsserver import NatsServer

ROOT = Path(__file__).parents[1]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def config_dir() -> Path:
    return ROOT / "config"
