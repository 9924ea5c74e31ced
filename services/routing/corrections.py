"""`kefu corrections export`: the period's corrected requests from the event log as labelled rows
(services/routing/domain/corrections.py), one JSON object per line, on stdout or into a file."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from shared.settings import KefuSettings

from .domain.corrections import labelled_rows
from .dryrun import read_log


def export(start: datetime, end: datetime, *, path: Path | None = None, out: TextIO = sys.stdout) -> int:
    """The rows of the requests received in [start, end) that agents corrected; returns how many."""
    recorded = asyncio.run(read_log(KefuSettings(service_name="ops"), start=start, end=end))
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in labelled_rows(recorded.values()))
    if path is None:
        out.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")
    return lines.count("\n")
