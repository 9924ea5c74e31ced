"""Scans every log written during the test run for personal data and credentials in clear.

In-process services log through a root handler (the services' own JSON formatter) into
`log_dir()`; the process-tree tests write their processes' stderr there too. At the end of the
session `tests/conftest.py` scans the directory and fails the run on any finding.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tests.support.services import ADAPTER_KEY, ADMIN_TOKEN, SURVEY_SECRET

ENV = "KEFU_TEST_LOG_DIR"

# what the tests send (devtools/payloads.py and the tests' own data) and the credentials they use
LITERALS = (
    "wangfang@example.cn", "anna@example.com", "110105199001011234", ADMIN_TOKEN, ADAPTER_KEY, SURVEY_SECRET,
)
PATTERNS = (
    re.compile(r"(?<![0-9A-Za-z_])1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![0-9A-Za-z_])"),  # mainland mobiles
    re.compile(r"(?:\+|00)86[ -]?1[3-9]\d"),
    re.compile(r"[\w.+-]+@example\.(?:cn|com|org)"),  # the tests' email addresses
    re.compile(r"(?i)bearer\s+(?!<token>)[A-Za-z0-9._-]{8,}"),
    re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]+"),  # staff tokens
)


def log_dir() -> Path:
    if ENV not in os.environ:
        os.environ[ENV] = tempfile.mkdtemp(prefix="kefu-test-logs-")
    path = Path(os.environ[ENV])
    path.mkdir(parents=True, exist_ok=True)
    return path


def findings(lines: Iterable[str]) -> list[str]:
    found = []
    for line in lines:
        hits = [lit for lit in LITERALS if lit in line] + [m.group(0) for p in PATTERNS for m in p.finditer(line)]
        if hits:
            found.append(f"{hits[0]!r} in: {line.strip()[:300]}")
    return found


def scan(directory: Path) -> list[str]:
    found = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open(encoding="utf-8", errors="replace") as lines:
                found += [f"{path.name}: {f}" for f in findings(lines)]
    return found
