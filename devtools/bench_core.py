"""The CPU of kefu's pure core per request, in this process, with no bus: what any implementation of
kefu's rules in Python pays before it touches NATS.

intake: parse the channel's native payload, the request id, the canonical `request.received` and its
JSON. routing: that JSON validated, the request routed (`route_request`: judged, SLA policy and
clocks on the working-day calendar, departments, the record with its decision and receipt) and the
record serialised twice (created, then its outbox cleared) with its outbox events.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from services.intake.domain.canonical import canonical_request, customer_ref, request_id_for
from services.intake.domain.identity import proof
from services.intake.domain.parsers import ParseContext, channel_of, parse
from services.intake.settings import IntakeSettings
from services.routing.domain.lifecycle import Context
from services.routing.domain.messages import Templates
from services.routing.domain.route import route_request
from services.routing.domain.rules import RoutingConfig
from services.routing.settings import RoutingSettings
from shared.config import load_yaml_model
from shared.contract.models import RequestReceived


class Core:
    """Intake's and routing's core, as the bench measures it: `received` (native payload -> the
    `request.received` JSON) and `routed` (that JSON -> the record as created, as cleared, and its
    events' payloads, all encoded)."""

    def __init__(self) -> None:
        intake = IntakeSettings()
        self.parse_ctx = ParseContext(now=datetime.now(UTC), tz=ZoneInfo(intake.timezone), region=intake.phone_region)
        routing = RoutingSettings()
        self.rules = RoutingConfig.load(routing.config_dir)
        self.templates = load_yaml_model(routing.config_dir / "messages.yaml", Templates)

    def received(self, channel_name: str, raw: bytes) -> bytes:
        channel = channel_of(channel_name)
        parsed = parse(channel, raw, self.parse_ctx)
        request_id_for(channel, parsed.source_id)
        now = datetime.now(UTC)
        proven = proof(channel, parsed.contact, attested=parsed.attested)
        event = canonical_request(channel=channel, parsed=parsed, intake_time=now, now=now,
                                  customer=customer_ref(parsed.contact, None, proof=proven))
        return event.model_dump_json().encode()

    def routed(self, data: bytes) -> tuple[bytes, bytes, list[bytes]]:
        ctx = Context.of(self.rules, self.templates, datetime.now(UTC))
        record = route_request(RequestReceived.model_validate_json(data), rules=self.rules, ctx=ctx)
        created = record.model_dump_json().encode()
        events = [json.dumps(event.payload, ensure_ascii=False).encode() for event in record.outbox]
        return created, record.model_copy(update={"outbox": []}).model_dump_json().encode(), events


def core_cpu_ms(items: list[tuple[str, bytes, str]]) -> dict[str, float]:
    """CPU milliseconds per request of intake's and routing's core over `items` (the bench's
    payloads: subject, native bytes, key), after a warm-up pass over a tenth of them."""
    core = Core()
    warm = items[: max(1, len(items) // 10)]
    for subject, raw, _ in warm:
        core.routed(core.received(subject.rsplit(".", 1)[1], raw))
    start = time.process_time()
    events = [core.received(subject.rsplit(".", 1)[1], raw) for subject, raw, _ in items]
    middle = time.process_time()
    for data in events:
        core.routed(data)
    end = time.process_time()
    return {"intake": round((middle - start) * 1000 / len(items), 3),
            "routing": round((end - middle) * 1000 / len(items), 3)}


def judgement_costs(texts: list[str], rounds: int = 5) -> dict[str, float]:
    """Microseconds per request of routing's judgement over `texts` (the labelled sets), split into
    normalising the text (OpenCC) and matching the rules; beside it what Chinese word segmentation
    (jieba, the usual choice) would add, and its dictionary's load time: the figures behind not
    adopting it (docs/performance.md#judgement)."""
    from services.routing.domain.classify import judge
    from services.routing.domain.rules import normalise
    from shared.contract.enums import Tier
    from shared.contract.models import Hints

    rules = RoutingConfig.load(RoutingSettings().config_dir).rules
    for text in texts:
        judge(text=text, hints=Hints(), tier=Tier.standard, rules=rules)

    def per_request(work) -> float:
        start = time.process_time()
        for _ in range(rounds):
            for text in texts:
                work(text)
        return round((time.process_time() - start) * 1e6 / (rounds * len(texts)), 1)

    result = {"judge_us": per_request(lambda t: judge(text=t, hints=Hints(), tier=Tier.standard, rules=rules)),
              "normalise_us": per_request(normalise)}
    try:
        import jieba
    except ImportError:
        return result
    jieba.setLogLevel(60)
    start = time.perf_counter()
    jieba.initialize()
    result["jieba_load_s"] = round(time.perf_counter() - start, 2)
    result["jieba_segment_us"] = per_request(jieba.lcut)
    return result
