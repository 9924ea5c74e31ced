"""`.ci/run` is what CI executes on a fresh machine: it must be valid bash, run nothing before
`set -euo pipefail`, and end in `make test` (an edit once turned its header comment into commands,
and the whole CI run would have failed before any test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / ".ci" / "run"


def test_the_ci_script_is_valid_bash() -> None:
    checked = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_nothing_runs_before_strict_mode_and_it_ends_in_make_test() -> None:
    lines = [line for line in SCRIPT.read_text().splitlines() if line.strip()]
    strict = lines.index("set -euo pipefail")
    assert all(line.startswith("#") for line in lines[:strict]), lines[:strict]
    assert lines[-1] == "make test"
