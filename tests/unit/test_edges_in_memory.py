"""The fast tier: each service's NATS edge (handlers.py) on FastStream's in-memory TestNatsBroker,
no server. A message on each subscribed subject reaches the service call it should, decoded into
the model the call takes; what must not be handled is not. The same edges run against a real
nats-server in tests/integration."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.nats import TestNatsBroker
from pydantic import ValidationError

from devtools.payloads import payload
from services.feedback.domain.survey import FeedbackTimer, MonthlyTimer, RevisitTimer, SurveyTimer
from services.feedback.handlers import build_router as feedback_router
from services.gateway.handlers import build_router as gateway_router
from services.intake.domain.contacts import mask_id_numbers
from services.intake.handlers import build_router as intake_router
from services.routing.domain.lifecycle import OfferTimer, RoutingTimer, SlaTimer
from services.routing.handlers import build_router as routing_router
from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.contract.models import OutboundMessage, RequestReceived, RequestReopened, SurveyReplied
from shared.nats.consume import decoder_for, durable_consumers
from shared.runtime import Late, make_runtime
from shared.settings import KefuSettings
from tests.unit.intake.test_id_masking import VALID


class Recorder:
    """Stands in for a service object: records each call the edge makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        async def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args[0] if args and not kwargs else kwargs))
        return record


def delivery(stream: str, consumer: str, seq: int) -> str:
    """The reply subject JetStream gives a delivery: its metadata (sequence, time) come from it."""
    return f"$JS.ACK.{stream}.{consumer}.1.{seq}.{seq}.{time.time_ns()}.0"


def edge(build: Any, service: str, **kwargs: Any) -> tuple[Any, Recorder]:
    runtime = make_runtime(KefuSettings(service_name=service), consumer=service)
    recorder = Recorder()
    slot: Late[Any] = Late(service)
    slot.set(recorder)
    runtime.broker.include_router(build(runtime, slot, batch_size=32, **kwargs))
    return runtime.broker, recorder


async def test_intake_admits_what_adapters_store_and_skips_what_was_admitted_already() -> None:
    broker, intake = edge(intake_router, "intake")
    walkin = json.dumps({"ticket_no": "T-1", "branch": "朝阳", "customer": {"name": "赵", "phone": "13900001111"},
                         "summary": f"身份证号 {VALID[0]}"}, ensure_ascii=False).encode()
    async with TestNatsBroker(broker) as br:
        await br.publish(payload(Channel.app, "e1"), "kefu.intake.app", stream=s.STREAM_INTAKE,
                         reply_to=delivery(s.STREAM_INTAKE, s.CONSUMER_INTAKE, 1))
        await br.publish(payload(Channel.sms, "e2"), "kefu.intake.sms", stream=s.STREAM_INTAKE,
                         headers={"Kefu-Admitted": "http"}, reply_to=delivery(s.STREAM_INTAKE, s.CONSUMER_INTAKE, 2))
        await br.publish(walkin, "kefu.intake.walkin", stream=s.STREAM_INTAKE,
                         reply_to=delivery(s.STREAM_INTAKE, s.CONSUMER_INTAKE, 3))
    names = [name for name, _ in intake.calls]
    assert names == ["admit", "admit", "replace_stored"]  # the HTTP-admitted sms payload is not admitted again
    first, walked, replaced = (call for _, call in intake.calls)
    assert (first["channel_name"], first["raw"], first["via"]) == ("app", payload(Channel.app, "e1"), "nats")
    assert isinstance(first["stored_at"], datetime) and first["stored_at"].tzinfo is not None
    assert walked["raw"] == mask_id_numbers(walkin) != walkin  # admitted from the masked bytes
    assert replaced["seq"] == 3 and replaced["masked"] == walked["raw"]


async def test_routing_gets_each_event_and_timer_as_its_model() -> None:
    broker, routing = edge(routing_router, "routing")
    received = await _sample_received()
    due = datetime(2026, 12, 7, 9, tzinfo=UTC)
    async with TestNatsBroker(broker) as br:
        await br.publish(received.model_dump_json().encode(), s.REQUEST_RECEIVED, stream=s.STREAM_EVENTS)
        await br.publish(RequestReopened(request_id="r1", actor="customer", reason="again").model_dump_json().encode(),
                         s.REQUEST_REOPENED, stream=s.STREAM_EVENTS)
        await br.publish({"timer": "offer", "request_id": "r1", "agent_id": "a1", "offer": 2},
                         "kefu.timers.fire.routing.r1.offer", stream=s.timers_stream("routing"))
        await br.publish({"timer": "resolution.breach", "request_id": "r1", "deadline": "resolution", "kind": "breach",
                          "due": due.isoformat()}, "kefu.timers.fire.routing.r1.resolution", stream=s.timers_stream("routing"))
    (n1, got), (n2, reopened), (n3, offer), (n4, sla) = routing.calls
    assert (n1, n2, n3, n4) == ("on_received", "on_reopened", "on_timer", "on_timer")
    assert got == received and reopened.request_id == "r1"
    assert offer == OfferTimer(timer="offer", request_id="r1", agent_id="a1", offer=2)
    assert isinstance(sla, SlaTimer) and sla.due == due and sla.kind == "breach"


async def test_feedback_gets_resolutions_answers_and_typed_timers() -> None:
    broker, feedback = edge(feedback_router, "feedback")
    async with TestNatsBroker(broker) as br:
        await br.publish(b'{"request_id": "r1"}', s.REQUEST_RESOLVED, stream=s.STREAM_EVENTS)
        await br.publish(SurveyReplied(survey_id="sv1", channel=Channel.sms, rating=2, via="reply").model_dump_json()
                         .encode(), s.SURVEY_REPLIED, stream=s.STREAM_EVENTS)
        await br.publish({"timer": "reminder", "survey_id": "sv1"}, "kefu.timers.fire.feedback.sv1.reminder",
                         stream=s.timers_stream("feedback"))
        await br.publish({"timer": "revisit", "followup_id": "f1"}, "kefu.timers.fire.feedback.f1.revisit",
                         stream=s.timers_stream("feedback"))
    names = [name for name, _ in feedback.calls]
    assert names == ["on_request_event", "on_reply", "on_timer", "on_timer"]
    assert feedback.calls[1][1].rating == 2
    assert feedback.calls[2][1] == SurveyTimer(timer="reminder", survey_id="sv1")
    assert feedback.calls[3][1] == RevisitTimer(timer="revisit", followup_id="f1")


async def test_gateway_delivers_each_enabled_platforms_messages_and_takes_no_other_channel() -> None:
    """The gateway is the adapter of the platforms it is configured for: each one's outbound
    messages reach that platform's delivery as the model, on the durable an adapter would use;
    a platform it is not configured for has no consumer at all (its messages wait for their own
    adapter)."""
    broker, gateway = edge(gateway_router, "gateway", platforms={"wechat", "sms"})
    assert {durable for _, durable in durable_consumers(broker)} == {"adapter-wechat", "adapter-sms"}

    def message(channel: Channel, to: dict[str, str]) -> bytes:
        return OutboundMessage(message_id=f"receipt.req_{channel.value}", request_id=f"req_{channel.value}",
                               channel=channel, kind="receipt", to=to, language="zh",
                               text="已收到").model_dump_json().encode()

    async with TestNatsBroker(broker) as br:
        await br.publish(message(Channel.wechat, {"wechat_openid": "o1"}), s.outbound_subject(Channel.wechat),
                         stream=s.STREAM_OUTBOUND)
        await br.publish(message(Channel.sms, {"phone": "+8613900001111"}), s.outbound_subject(Channel.sms),
                         stream=s.STREAM_OUTBOUND)
        await br.publish(message(Channel.email, {"email": "a@example.com"}), s.outbound_subject(Channel.email),
                         stream=s.STREAM_OUTBOUND)
    assert [(name, msg.request_id) for name, msg in gateway.calls] == [("deliver_wechat", "req_wechat"),
                                                                       ("deliver_sms", "req_sms")]
    assert isinstance(gateway.calls[0][1], OutboundMessage) and gateway.calls[0][1].to == {"wechat_openid": "o1"}

def test_a_handler_asking_for_a_union_of_models_gets_the_one_its_discriminator_names() -> None:
    """Timers are typed end to end: a handler's parameter may be a discriminated union of models
    (routing's and feedback's timers), decoded in one pass; a body that fits none is refused."""
    async def on_routing_timer(timer: RoutingTimer) -> None: ...
    async def on_feedback_timer(timer: FeedbackTimer) -> None: ...

    routing, feedback = decoder_for(on_routing_timer), decoder_for(on_feedback_timer)
    assert routing(b'{"timer": "offer", "request_id": "r1", "agent_id": "a1", "offer": 2}') == OfferTimer(
        request_id="r1", agent_id="a1", offer=2)
    sla = routing(b'{"timer": "resolution.breach", "request_id": "r1", "deadline": "resolution", "kind": "breach", '
                  b'"due": "2026-12-07T09:00:00+00:00"}')
    assert isinstance(sla, SlaTimer) and sla.kind == "breach"
    assert feedback(b'{"timer": "revisit", "followup_id": "f1"}') == RevisitTimer(followup_id="f1")
    assert feedback(b'{"timer": "expire", "survey_id": "sv1"}') == SurveyTimer(timer="expire", survey_id="sv1")
    assert feedback(b'{"timer": "monthly"}') == MonthlyTimer()
    for refused in (b'{"timer": "resolution.breach", "request_id": "r1", "deadline": "resolution", "kind": "maybe", '
                    b'"due": "2026-12-07T09:00:00+00:00"}',  # not a kind of moment
                    b'{"timer": "first_response.breach", "request_id": "r1", "deadline": "resolution", '
                    b'"kind": "breach", "due": "2026-12-07T09:00:00+00:00"}',  # named for another moment
                    b'{"timer": "offer", "request_id": "r1"}'):  # an offer timer without its agent
        with pytest.raises(ValidationError):
            routing(refused)
    with pytest.raises(ValidationError):
        feedback(b'{"timer": "sometime", "survey_id": "sv1"}')


async def _sample_received() -> RequestReceived:
    from zoneinfo import ZoneInfo

    from services.intake.domain.canonical import canonical_request, customer_ref
    from services.intake.domain.identity import proof
    from services.intake.domain.parsers import ParseContext, parse

    now = datetime(2026, 12, 4, 10, tzinfo=UTC)
    parsed = parse(Channel.app, payload(Channel.app, "e1"), ParseContext(now=now, tz=ZoneInfo("Asia/Shanghai")))
    proven = proof(Channel.app, parsed.contact, attested=parsed.attested)
    return canonical_request(channel=Channel.app, parsed=parsed, customer=customer_ref(parsed.contact, None, proof=proven),
                             intake_time=now, now=now)


@pytest.fixture(autouse=True)
def _no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_NATS_URL", "nats://127.0.0.1:1")  # nothing listens: a real connection would fail
