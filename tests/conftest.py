from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.natsserver import NatsServer

ROOT = Path(__file__).parents[1]
_LOG_HANDLER = pytest.StashKey["logging.Handler"]()
_LOG_FINDINGS = pytest.StashKey[list[str]]()


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


# -- personal data in logs: every log line written during the run is scanned at the end -------------

def pytest_configure(config: pytest.Config) -> None:
    import logging

    from shared.observability.logs import JsonFormatter
    from tests.support.logscan import log_dir

    handler = logging.FileHandler(log_dir() / f"in-process-{os.getpid()}.jsonl", encoding="utf-8")
    handler.setFormatter(JsonFormatter("tests"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    config.stash[_LOG_HANDLER] = handler


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.support.logscan import log_dir, scan

    handler = session.config.stash.get(_LOG_HANDLER, None)
    if handler is not None:
        handler.flush()
    found = scan(log_dir())
    session.config.stash[_LOG_FINDINGS] = found
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    from tests.support.logscan import log_dir
    from tests.support.report import FIGURES

    for line in config.stash.get(FIGURES, []):
        terminalreporter.write_line(line)
    found = config.stash.get(_LOG_FINDINGS, [])
    if found:
        terminalreporter.write_sep("=", f"personal data or credentials in clear in {len(found)} log line(s)", red=True)
        for line in found[:20]:
            terminalreporter.write_line(line)
    else:
        lines = sum(1 for p in log_dir().rglob("*") if p.is_file() for _ in p.open(errors="replace"))
        terminalreporter.write_line(f"log scan: {lines} log lines written during the run, no personal data in clear")
