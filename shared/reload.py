"""Configuration applied without a restart. The service's files are read again when they change
(looked at every `interval` seconds) or on SIGHUP, and validated in full first. An invalid set
keeps the running configuration, says why in the log, and shows on `kefu_config_valid` (0) and
`kefu_config_reloads_total{outcome="invalid"}`; a valid one is applied at once (the next message
is handled with it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

from .config import ConfigError

log = logging.getLogger("kefu.config")
T = TypeVar("T")


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when a file of the directory is edited, added or removed."""
    found = []
    for path in sorted(directory.glob("*.yaml")):
        with contextlib.suppress(OSError):
            stat = path.stat()
            found.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(found)


class ConfigReloader(Generic[T]):
    """`load` reads and validates the whole configuration (ConfigError with file and line);
    `apply` puts it in place, or answers why it may not be applied without a restart."""

    def __init__(self, directory: Path, *, load: Callable[[], T], apply: Callable[[T], str | None],
                 registry: CollectorRegistry, interval: float) -> None:
        self.directory, self.load, self.apply, self.interval = directory, load, apply, interval
        self.seen = fingerprint(directory)
        self.hup = asyncio.Event()
        self.reloads = Counter("kefu_config_reloads_total", "Configuration changes seen, by outcome: applied, or "
                               "invalid (the running configuration kept).", ["outcome"], registry=registry)
        self.valid = Gauge("kefu_config_valid", "1 while the configuration files on disk are the ones running; 0 "
                           "after a change that was refused (the log says why).", registry=registry)
        self.loaded = Gauge("kefu_config_loaded_timestamp_seconds", "When the running configuration was loaded.",
                            registry=registry)
        for outcome in ("applied", "invalid"):
            self.reloads.labels(outcome)
        self.valid.set(1)
        self.loaded.set(time.time())

    def listen_for_hangup(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on this platform / thread
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.hup.set)

    async def run(self) -> None:
        self.listen_for_hangup()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self.hup.wait()
            asked = self.hup.is_set()
            self.hup.clear()
            now = fingerprint(self.directory)
            if now != self.seen or asked:
                self.seen = now
                self.check()

    def check(self) -> bool:
        """Read the files again and apply them if they are valid; True when applied."""
        try:
            candidate = self.load()
            refused = self.apply(candidate)
        except ConfigError as exc:
            refused = str(exc)
        if refused:
            self.reloads.labels("invalid").inc()
            self.valid.set(0)
            log.error("configuration change refused; the running configuration is kept",
                      extra={"directory": str(self.directory), "reason": refused[:2000]})
            return False
        self.reloads.labels("applied").inc()
        self.valid.set(1)
        self.loaded.set(time.time())
        log.info("configuration reloaded", extra={"directory": str(self.directory)})
        return True
