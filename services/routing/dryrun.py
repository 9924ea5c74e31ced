"""`kefu policy dry-run`: the event log's requests of a period replayed through a candidate
configuration (services/routing/domain/dryrun.py), read by sequence with direct gets (no consumer,
nothing published). Output: a table on the terminal, and JSON and CSV files on request."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import nats

from shared.contract import subjects as s
from shared.contract.models import RequestAssigned, RequestCorrected, RequestReceived
from shared.nats.logreader import LogReader
from shared.nats.topology import connect_kwargs
from shared.settings import KefuSettings

from .domain.dryrun import Recorded, Report, dry_run, table
from .domain.rules import RoutingConfig

BATCH = 1000
FOLLOWED = (s.REQUEST_RECEIVED, s.REQUEST_ASSIGNED, s.REQUEST_ACCEPTED, s.REQUEST_RESOLVED, s.REQUEST_CORRECTED)


def collect(entries: list[tuple[str, bytes]], recorded: dict[str, Recorded], *, start: datetime, end: datetime) -> None:
    """Fold a batch of the log into the requests received in [start, end) and what became of them."""
    for subject, data in entries:
        if subject == s.REQUEST_RECEIVED:
            request = RequestReceived.model_validate_json(data)
            if start <= request.received_at < end and request.request_id not in recorded:
                recorded[request.request_id] = Recorded(received=request)
            continue
        event = json.loads(data)
        found = recorded.get(event.get("request_id", ""))
        if found is None:
            continue
        if subject == s.REQUEST_ASSIGNED and found.assigned is None:
            found.assigned = RequestAssigned.model_validate(event)
        elif subject == s.REQUEST_ACCEPTED and found.accepted_at is None:
            found.accepted_at = datetime.fromisoformat(event["occurred_at"])
        elif subject == s.REQUEST_RESOLVED and found.resolved_at is None:
            found.resolved_at = datetime.fromisoformat(event["occurred_at"])
        elif subject == s.REQUEST_CORRECTED:
            found.corrections.append(RequestCorrected.model_validate(event))


async def read_log(settings: KefuSettings, *, start: datetime, end: datetime) -> dict[str, Recorded]:
    """The period's requests, and what the log says of them from their arrival to its end."""
    nc = await nats.connect(**connect_kwargs(settings) | {"max_reconnect_attempts": 0, "connect_timeout": 5})
    recorded: dict[str, Recorded] = {}
    try:
        reader = LogReader(nc, s.STREAM_EVENTS, timeout=30)
        entries = await reader.batch(start_time=start - timedelta(days=1), size=BATCH)  # received_at may be earlier
        while entries:
            collect([(e.subject, e.data) for e in entries if e.subject in FOLLOWED], recorded, start=start, end=end)
            entries = await reader.batch(seq=entries[-1].seq + 1, size=BATCH)
        await reader.close()
    finally:
        await nc.close()
    return recorded


def write_csv(report: Report, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["section", "name", "value_1", "value_2", "value_3"])
        for name, c in report.changes.items():
            out.writerow(["changed", name, c.changed, "", ""])
            for transition, count in sorted(c.transitions.items()):
                out.writerow(["transition", name, transition, count, ""])
        for name, a in report.attainment.items():
            out.writerow(["attainment", name, a.judged, a.met_recorded, a.met_candidate])
        for department, v in report.volumes.items():
            out.writerow(["volume", department, v["recorded"], v["candidate"], ""])
        for name, agreement in report.corrections.items():
            out.writerow(["corrections", name, agreement.corrected, agreement.candidate_agrees, ""])


def run(config_dir: Path, start: datetime, end: datetime, *, json_path: Path | None = None,
        csv_path: Path | None = None, out: TextIO = sys.stdout) -> Report:
    import asyncio

    candidate = RoutingConfig.load(config_dir)  # invalid: ConfigError, with file and line
    recorded = asyncio.run(read_log(KefuSettings(service_name="ops"), start=start, end=end))
    report = dry_run(recorded.values(), candidate=candidate, until=datetime.now(UTC))
    print(table(report), file=out)
    if json_path is not None:
        json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if csv_path is not None:
        write_csv(report, csv_path)
    return report
