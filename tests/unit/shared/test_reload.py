"""shared/reload.py: a change is applied only when valid; SIGHUP reads the files again even
when nothing changed on disk (a secret mounted elsewhere, a restore to the same mtime)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from prometheus_client import CollectorRegistry

from shared.config import ConfigError
from shared.reload import ConfigReloader


async def test_valid_changes_apply_invalid_ones_do_not_and_sighup_reads_again(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("v: 1\n")
    applied: list[str] = []

    def load() -> str:
        text = (tmp_path / "a.yaml").read_text()
        if "broken" in text:
            raise ConfigError("a.yaml:1: broken")
        return text

    registry = CollectorRegistry()
    reloader = ConfigReloader(tmp_path, load=load, apply=lambda v: applied.append(v) or None, registry=registry,
                              interval=3600)  # only SIGHUP wakes it in this test
    task = asyncio.create_task(reloader.run())
    try:
        await asyncio.sleep(0)  # its SIGHUP handler is installed
        (tmp_path / "a.yaml").write_text("broken\n")
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(5):
            while registry.get_sample_value("kefu_config_reloads_total", {"outcome": "invalid"}) != 1:
                await asyncio.sleep(0.01)
        assert applied == [] and registry.get_sample_value("kefu_config_valid") == 0
        (tmp_path / "a.yaml").write_text("v: 2\n")
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(5):
            while not applied:
                await asyncio.sleep(0.01)
        assert applied == ["v: 2\n"] and registry.get_sample_value("kefu_config_valid") == 1
    finally:
        task.cancel()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
