"""The lookup index at scale (docs/performance.md, "Lookup"): builds an index of N requests from
synthetic events (received, assigned, one state change each, a follow-up for every fifth) through
the same `apply_batch` metrics follows the event log with, then times the queries GET /v1/requests
makes. `python -m devtools.bench_lookup [N] [path]` (default 1,000,000 on disk in a temp dir)."""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.metrics.lookup import LookupIndex, Query, Scope
from shared.contract import subjects as s
from shared.contract.conversation import short_ref

WORDS = ["冰箱不制冷", "宽带断了三天", "发票还没收到", "热水器漏水", "积分怎么兑换", "快递丢了", "password reset",
         "refund my order", "燃气灶打不着火", "空调异响"]
DEPARTMENTS = ["customer_service", "quality", "production", "after_sales", "business", "hr", "coordination"]


def rid(i: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    digits = []
    n = i * 2654435761 % (32 ** 12)
    for _ in range(12):
        digits.append(alphabet[n % 32])
        n //= 32
    return "req_" + "".join(digits) + "a" * 14


def events(n: int, rng: random.Random):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    seq = 0
    for i in range(n):
        r = rid(i)
        at = (start + timedelta(seconds=30 * i)).isoformat()
        phone = f"+86139{rng.randrange(10**8):08d}"
        department = DEPARTMENTS[i % 7]
        batch = [
            (s.REQUEST_RECEIVED, {"request_id": r, "received_at": at, "channel": "sms",
                                  "customer": {"customer_id": f"c-{i % 200000}", "phone": phone},
                                  "subject": None, "body": f"{rng.choice(WORDS)}，订单 {i}"}),
            (s.REQUEST_ASSIGNED, {"request_id": r, "department": department, "co_departments": [],
                                  "queue": f"{department}.normal"}),
            (s.REQUEST_RESOLVED if i % 3 else s.REQUEST_ACCEPTED, {"request_id": r, "agent_id": f"a-{i % 300}"}),
        ]
        if i % 5 == 0:
            batch.append((s.REQUEST_MESSAGE, {"request_id": r, "text": rng.choice(WORDS)}))
        for subject, body in batch:
            seq += 1
            yield seq, subject, json.dumps(body, ensure_ascii=False).encode(), phone


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    path = sys.argv[2] if len(sys.argv) > 2 else str(Path(tempfile.mkdtemp()) / "index.sqlite")
    rng = random.Random(20261205)
    index = LookupIndex(path)
    phones: list[str] = []
    t0 = time.perf_counter()
    chunk: list[tuple[int, str, bytes]] = []
    count = 0
    for seq, subject, data, phone in events(n, rng):
        chunk.append((seq, subject, data))
        if subject == s.REQUEST_RECEIVED and rng.random() < 0.001:
            phones.append(phone)
        if len(chunk) == 500:  # metrics' batch size when it follows the log (handlers.BATCH)
            index.apply_batch(chunk)
            count += len(chunk)
            chunk = []
    index.apply_batch(chunk)
    count += len(chunk)
    built = time.perf_counter() - t0
    size = Path(path).stat().st_size if path != ":memory:" else 0
    print(f"{n:,} requests, {count:,} events applied in {built:.1f} s: {count / built:,.0f} events/s, "
          f"{n / built:,.0f} requests/s; file {size / 2**20:,.0f} MiB")
    everyone = Scope(everything=True)
    business = Scope(everything=False, departments=("business",), agent_id="a-7")
    queries = {
        "contact": lambda k: Query(contact=phones[k % len(phones)]),
        "customer_id": lambda k: Query(customer_id=f"c-{k * 7919 % 200000}"),
        "ref": lambda k: Query(ref=short_ref(rid(k * 104729 % n))),
        "q (two words, zh)": lambda k: Query(q=WORDS[k % len(WORDS)][:4]),
        "state+queue": lambda k: Query(state="accepted", queue=f"{DEPARTMENTS[k % 7]}.normal"),
        "newest page": lambda k: Query(),
        "q, agent scope": lambda k: Query(q="漏水"),
    }
    for name, make in queries.items():
        times = []
        for k in range(200):
            scope = business if "scope" in name else everyone
            t = time.perf_counter()
            _rows, cursor = index.find(make(k), scope)
            if cursor and k % 10 == 0:
                index.find(Query(**{**make(k).__dict__, "cursor": cursor}), scope)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"  {name:20s} median {statistics.median(times):7.2f} ms  p99 {times[int(len(times) * 0.99) - 1]:7.2f} ms")
    index.close()


if __name__ == "__main__":
    main()
