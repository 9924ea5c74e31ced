"""How fast `kefu policy dry-run` replays: the pure replay (judge, SLA policy and deadlines,
departments, under a candidate configuration) and the folding of the log's events, per request,
in one process, on the labelled set's texts. `python -m devtools.bench_dryrun [N]` (default 50,000)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.routing.domain.dryrun import Recorded, decide, dry_run
from services.routing.domain.rules import RoutingConfig
from services.routing.dryrun import collect
from shared.contract import subjects as s
from shared.contract.enums import Channel, Language
from shared.contract.models import CustomerRef, RequestAccepted, RequestReceived

ROOT = Path(__file__).parents[1]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    config = RoutingConfig.load(ROOT / "config")
    texts = [json.loads(line)["text"] for line in (ROOT / "tests/data/labelled_requests.jsonl").read_text().splitlines()]
    start = datetime(2026, 11, 2, tzinfo=UTC)
    log: list[tuple[str, bytes]] = []
    for i in range(n):
        at = start + timedelta(seconds=i * 7)
        request = RequestReceived(request_id=f"req_{i:026d}", channel=Channel.sms, source_id=f"SM{i}", received_at=at,
                                  customer=CustomerRef(phone=f"+86138{i % 10**8:08d}"), body=texts[i % len(texts)],
                                  language=Language.zh)
        log.append((s.REQUEST_RECEIVED, request.model_dump_json().encode()))
        log.append((s.REQUEST_ASSIGNED, decide(request, config=config).model_dump_json().encode()))
        log.append((s.REQUEST_ACCEPTED, RequestAccepted(request_id=request.request_id, occurred_at=at + timedelta(
            minutes=i % 60), agent_id="a1").model_dump_json().encode()))
    t0 = time.process_time()
    recorded: dict[str, Recorded] = {}
    collect(log, recorded, start=start, end=start + timedelta(days=365))
    t1 = time.process_time()
    report = dry_run(recorded.values(), candidate=config, until=start + timedelta(days=400))
    t2 = time.process_time()
    fold, replay = (t1 - t0) * 1e6 / n, (t2 - t1) * 1e6 / n
    print(f"{n} requests: folding the log {fold:.0f} us/request, replay {replay:.0f} us/request; "
          f"a million: {(fold + replay):.0f} s of one core ({report.requests} replayed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
