"""ruff, as configured in pyproject.toml, finds nothing: part of make test, so main stays clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a dev dependency (pip install -e '.[dev]')"
    done = subprocess.run([ruff, "check", "services", "shared", "devtools", "tests"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]


def test_mypy_is_clean_on_services_and_shared() -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    assert mypy, "mypy is a dev dependency (pip install -e '.[dev]')"
    done = subprocess.run([mypy], cwd=ROOT, capture_output=True, text=True, timeout=600)  # [tool.mypy] files
    assert done.returncode == 0, done.stdout[-4000:]
