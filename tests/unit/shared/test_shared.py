from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

import shared
from shared.contract import subjects as s
from shared.contract.enums import Channel
from shared.contract.models import RequestAssigned, RequestReceived
from shared.nats.settle import RetryPolicy
from shared.nats.topology import bucket_configs, stream_configs
from shared.settings import KefuSettings


def test_every_platform_module_says_its_purpose_and_the_readme_lists_it() -> None:
    """The platform is split by idea (contract, nats, http, observability): each module opens with
    its purpose, and shared/README.md names every one, so a newcomer can find the line they need."""
    import ast
    from pathlib import Path

    root = Path(shared.__file__).parent
    readme = (root / "README.md").read_text()
    modules = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    assert {p.parent.name for p in modules} >= {"contract", "nats", "http", "observability"}
    for path in modules:
        doc = ast.get_docstring(ast.parse(path.read_text()))
        rel = path.relative_to(root).as_posix()
        assert doc and doc.splitlines()[0].strip(), f"{rel} has no one-line purpose"
        if path.name != "__init__.py":
            assert f"`{rel}`" in readme, f"shared/README.md does not list {rel}"
        assert len(path.read_text().splitlines()) <= 400, f"{rel} is long: split it by idea"


def test_the_contract_imports_no_broker_and_no_web_framework() -> None:
    """A consumer of kefu's events (or a pure domain module) imports the contract alone."""
    import subprocess
    import sys

    probe = ("import sys, shared, shared.contract.models, shared.contract.subjects, shared.contract.enums\n"
             "print(sorted(m for m in ('faststream', 'fastapi', 'nats', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_intake_subject_is_captured_by_the_intake_stream() -> None:
    streams = {c.name: c for c in stream_configs(KefuSettings())}
    assert streams[s.STREAM_INTAKE].subjects == ["kefu.intake.>"]
    assert streams[s.STREAM_EVENTS].subjects == ["kefu.events.>"]
    assert all(s.intake_subject(c).startswith("kefu.intake.") for c in Channel)
    assert all(cfg.storage.value == "file" and cfg.duplicate_window >= 60 for cfg in streams.values())


def test_buckets_have_valid_names() -> None:
    import re

    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", b.bucket) for b in bucket_configs(KefuSettings()))


def test_retry_policy_backs_off_and_gives_up() -> None:
    policy = RetryPolicy(max_deliver=4, backoff=(1, 5, 30))
    assert [policy.delay(n) for n in (1, 2, 3, 9)] == [1, 5, 30, 30]
    assert not policy.gives_up(3) and policy.gives_up(4)


def test_settings_common_and_service_specific_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.intake.settings import IntakeSettings

    monkeypatch.setenv("KEFU_NATS_URL", "nats://a:1,nats://b:2")
    monkeypatch.setenv("KEFU_INTAKE_HTTP_PORT", "9001")
    monkeypatch.setenv("KEFU_ADAPTER_KEYS", "wechat:k1, k2")
    settings = IntakeSettings()
    assert settings.nats_url == "nats://a:1,nats://b:2" and settings.http_port == 9001
    assert settings.adapter_key_map() == {"k1": "wechat", "k2": "adapter1"}


def test_rejected_subject_of_unknown_channel() -> None:
    assert s.rejected_subject("fax") == "kefu.rejected.unknown"
    assert s.rejected_subject("sms") == "kefu.rejected.sms"
    assert s.rejected_subject("sms", "rej_x") == "kefu.rejected.sms.rej_x"


def test_events_serialise_every_instant_in_utc_and_a_schema_version() -> None:
    """One convention (docs/operations.md#time): a received +08:00 time comes back as the same instant in UTC."""
    event = RequestReceived.model_validate({
        "request_id": "req_x", "channel": "sms", "source_id": "1", "received_at": "2026-11-24T10:00:00+08:00",
        "customer": {}, "body": "hi", "language": "en", "future_field": 1,
    })
    data = event.model_dump(mode="json")
    assert data["schema_version"] == 1 and data["received_at"] == "2026-11-24T02:00:00+00:00"
    assert data["occurred_at"].endswith("+00:00") and data["future_field"] == 1


def test_naive_times_are_refused_by_the_contract() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        RequestAssigned.model_validate({
            "request_id": "r", "channel": "sms", "category": "help", "priority": "normal", "tier": "standard",
            "emergency": False, "department": "x", "queue": "q", "topic": "t",
            "due": {"first_response": datetime(2026, 1, 1).isoformat(), "resolution": datetime.now(UTC).isoformat()},
        })


async def test_pull_fetch_timeouts_always_reach_faststream_as_nats_timeouts() -> None:

    import nats.errors
    from nats.js import JetStreamContext

    from shared.nats.client import _timeouts_as_nats_timeouts

    async def bare_timeout() -> None:
        raise TimeoutError

    with pytest.raises(nats.errors.TimeoutError):
        await _timeouts_as_nats_timeouts(bare_timeout)()
    from shared.nats.client import tune_nats_client

    tune_nats_client()  # what every service's start-up does
    assert hasattr(JetStreamContext.PullSubscription.fetch, "__wrapped__")


def test_nats_credentials_reach_the_broker_as_faststream_security() -> None:
    from faststream.nats import NatsBroker, NatsUserPassword

    from shared.nats.topology import broker_kwargs, connect_kwargs

    settings = KefuSettings(nats_user="intake", nats_password="secret", service_name="intake")
    kwargs = broker_kwargs(settings)
    assert isinstance(kwargs["security"], NatsUserPassword) and "user" not in kwargs
    NatsBroker(**kwargs)  # accepted as it is
    assert connect_kwargs(settings)["user"] == "intake"
    assert connect_kwargs(settings)["inbox_prefix"] == b"_INBOX_intake"


def test_streams_refuse_when_full_rather_than_drop_and_the_dlq_takes_advisories() -> None:
    from nats.js.api import DiscardPolicy, RetentionPolicy

    configs = {c.name: c for c in stream_configs(KefuSettings(stream_max_bytes=1024**3))}
    for name, cfg in configs.items():
        assert cfg.retention is RetentionPolicy.LIMITS and cfg.max_bytes == 1024**3
        assert cfg.discard is (DiscardPolicy.OLD if name.startswith("KEFU_TIMERS_") else DiscardPolicy.NEW)
    assert s.MAX_DELIVERIES_ADVISORIES in configs[s.STREAM_DLQ].subjects


def test_failure_reasons_never_quote_the_customers_data() -> None:
    import json as _json

    from pydantic import ValidationError

    from shared.contract.models import RequestReceived
    from shared.nats.settle import describe

    try:
        RequestReceived.model_validate({"request_id": "r", "channel": "fax", "body": "我叫张伟，电话13900001111"})
    except ValidationError as exc:
        reason = describe(exc)
    assert reason.startswith("ValidationError: channel: enum") and "13900001111" not in reason
    try:
        _json.loads('{"phone": "13900001111"')
    except _json.JSONDecodeError as exc:
        assert "13900001111" not in describe(exc)


def test_consumers_decode_each_body_once_as_the_handler_asks() -> None:
    from shared.nats.consume import decoder_for

    async def wants_model(event: RequestReceived) -> None: ...
    async def wants_bytes(body: bytes) -> None: ...
    async def wants_json(body: dict[str, Any]) -> None: ...

    body = (b'{"request_id": "req_x", "channel": "sms", "source_id": "1", '
            b'"received_at": "2026-11-24T10:00:00+08:00", "customer": {}, "body": "hi", "language": "en"}')
    as_model, as_bytes, as_json = (decoder_for(h) for h in (wants_model, wants_bytes, wants_json))
    event = as_model(body)
    assert isinstance(event, RequestReceived) and event.request_id == "req_x"
    assert as_bytes(body) is body
    assert as_json(body)["source_id"] == "1"
    with pytest.raises(ValidationError):  # dead-lettered by the consume path
        as_model(b'{"request_id": 1')
    # the handler gets exactly what it declared: a body that is JSON but not an object is a
    # permanent failure, dead-lettered at once
    from shared.nats.settle import Permanent

    with pytest.raises(Permanent):
        as_json(b'["req_x"]')


def test_a_nats_server_without_message_schedules_is_refused_at_start() -> None:
    from shared.nats.topology import require_server

    with pytest.raises(SystemExit, match=r"2\.11 is too old"):
        require_server(2, 11)
    require_server(2, 12)
    require_server(3, 0)
    require_server(0, 0)  # the server did not say: the stream checks decide


class _Delivery:
    """A JetStream delivery as the consume path sees it: body, reply (its metadata), settlement."""

    def __init__(self, consumer: str, size: int, delivered: int = 1) -> None:
        self.data, self.subject, self.reply = b"x" * size, "kefu.test", f"$JS.ACK.S.{consumer}.{delivered}.1.1.0.0"
        self.metadata = SimpleNamespace(consumer=consumer, num_delivered=delivered)
        self.settled: list[tuple[str, float | None]] = []

    async def ack(self) -> None:
        self.settled.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append(("nak", delay))

    async def term(self) -> None:
        self.settled.append(("term", None))


async def test_the_consume_path_settles_each_failure_as_the_policy_says() -> None:
    """Success acks; a failure is NAKed with the policy's delay for its delivery; a permanent
    failure, and the last allowed delivery, are dead-lettered and terminated; a dead letter that
    cannot be written leaves the message to be delivered again."""
    from prometheus_client import CollectorRegistry

    from shared.nats.consume import Consuming, consume_path, current_message
    from shared.nats.settle import Permanent
    from shared.observability.metrics import HandlerSeries

    dead: list[tuple[bytes, str]] = []
    redelivered: list[str] = []
    seen: list[Any] = []

    async def dead_letter(msg: Any, reason: str) -> None:
        if msg.data == b"x" * 13:
            raise ConnectionError("stream unavailable")
        dead.append((msg.data, reason))

    consuming = Consuming(KefuSettings(max_deliver=3, retry_backoff_seconds=(1.0, 5.0)),
                          HandlerSeries(CollectorRegistry(), app_name="kefu_test"), dead_letter, redelivered.append)

    async def handler(body: bytes) -> None:
        seen.append(current_message())
        if len(body) in (11, 13):
            raise Permanent("never")
        if len(body) > 1:
            raise KeyError("boom")

    path = consume_path(handler, consuming, "routing", lock=nullcontext())
    ok, retried, again, last, permanent, stuck = (_Delivery("routing", 1), _Delivery("routing", 2),
                                                  _Delivery("routing", 2, delivered=2), _Delivery("routing", 2, 3),
                                                  _Delivery("routing", 11), _Delivery("routing", 13))
    for msg in (ok, retried, again, last, permanent, stuck):
        await path(msg)
    assert seen == [ok, retried, again, last, permanent, stuck]  # the handler could read its own message
    assert [m.settled for m in (ok, retried, again, last, permanent, stuck)] == [
        [("ack", None)], [("nak", 1.0)], [("nak", 5.0)], [("term", None)], [("term", None)], [("nak", None)]]
    assert [len(body) for body, _ in dead] == [2, 11]
    assert dead[1][1] == "Permanent: never" and redelivered == ["routing", "routing"]


async def test_handler_metrics_expose_what_faststreams_prometheus_middleware_does_labelled_by_consumer() -> None:
    """kefu's consume path must expose the same series, with the same values, as FastStream's
    PrometheusMiddleware given the durable consumer as the handler label: dashboards and alerts
    read `faststream_received_*`. Successes, a retry (nack), a dead letter (reject) and a dead
    letter that failed (an error with its exception type)."""
    from faststream.exceptions import NackMessage, RejectMessage
    from faststream.message import SourceType
    from faststream.nats.prometheus.provider import NatsMetricsSettingsProvider
    from faststream.prometheus.middleware import PrometheusMiddleware
    from prometheus_client import CollectorRegistry, generate_latest

    from shared.nats.consume import Consuming, consume_path
    from shared.nats.settle import Permanent
    from shared.observability.metrics import HandlerSeries

    class ByConsumer(NatsMetricsSettingsProvider):
        def get_consume_attrs_from_message(self, msg: Any) -> Any:
            return {"destination_name": msg.raw_message.metadata.consumer, "message_size": len(msg.body),
                    "messages_count": 1}

    # (consumer, size, what happens): FastStream's middleware sees the outcome as the exception
    # its acknowledgement middleware would; kefu's consume path makes the same outcome happen
    steps = [("routing", 900, "ok"), ("routing", 20, "retry"), ("routing-timers", 300, "ok"),
             ("routing", 5000, "dead"), ("intake", 70, "dead letter failed"), ("routing", 900, "ok")]
    raises = {"ok": None, "retry": NackMessage(delay=1), "dead": RejectMessage(), "dead letter failed": KeyError("boom")}

    def lines(registry: Any) -> list[str]:
        text = generate_latest(registry).decode()
        # durations and creation times differ between two runs; their counts do not
        return [line for line in text.splitlines()
                if "_created" not in line and not ("duration_seconds" in line and "_count" not in line)]

    theirs_registry = CollectorRegistry()
    theirs = PrometheusMiddleware(settings_provider_factory=lambda _: ByConsumer(), registry=theirs_registry,
                                  app_name="kefu_test")
    for consumer, size, what in steps:
        raw = SimpleNamespace(metadata=SimpleNamespace(consumer=consumer), reply="$JS.ACK.x")
        msg = SimpleNamespace(raw_message=raw, body=b"x" * size, source_type=SourceType.CONSUME, committed=None)

        async def outcome(_: Any, exc: Any = raises[what]) -> None:
            if exc is not None:
                raise exc

        with pytest.raises(Exception) if what != "ok" else nullcontext():
            await theirs(msg, context=None).consume_scope(outcome, msg)

    async def dead_letter(msg: Any, reason: str) -> None:
        if msg.metadata.consumer == "intake":
            raise KeyError("boom")

    ours_registry = CollectorRegistry()
    consuming = Consuming(KefuSettings(max_deliver=5, retry_backoff_seconds=(1.0,)),
                          HandlerSeries(ours_registry, app_name="kefu_test"), dead_letter, lambda consumer: None)

    async def handler(body: bytes) -> None:
        what = next(w for _, size, w in steps if size == len(body))
        if what == "retry":
            raise ConnectionError("later")
        if what != "ok":
            raise Permanent("never")

    paths = {consumer: consume_path(handler, consuming, consumer, lock=nullcontext()) for consumer, _, _ in steps}
    for consumer, size, _ in steps:
        await paths[consumer](_Delivery(consumer, size))
    expected = lines(theirs_registry)
    assert 'status="nacked"' in "\n".join(expected) and 'exception_type="KeyError"' in "\n".join(expected)
    assert lines(ours_registry) == expected


def test_importing_kefu_changes_nothing_in_nats_py_until_a_service_starts() -> None:
    """The fetch tuning is applied by an explicit call at start-up, never by `import shared`."""
    import subprocess
    import sys

    probe = ("import shared.nats.client, shared.runtime, services.routing.app\n"
             "from nats.js import JetStreamContext\n"
             "before = hasattr(JetStreamContext.PullSubscription.fetch, '__wrapped__')\n"
             "shared.nats.client.tune_nats_client(); shared.nats.client.tune_nats_client()\n"
             "f = JetStreamContext.PullSubscription.fetch\n"
             "print(before, hasattr(f, '__wrapped__'), hasattr(f.__wrapped__, '__wrapped__'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "False"]  # untouched on import; applied once, however often called


def test_the_publish_contract_allows_declared_subjects_only() -> None:
    from shared.nats.publish import Contract, Publishes, audit_of, to_customers

    contract = Contract([Publishes(s.REQUEST_RECEIVED, RequestReceived, "d"), *to_customers(),
                         audit_of("request.read", "a request")])
    assert contract.allows(s.STREAM_EVENTS, s.REQUEST_RECEIVED)
    assert contract.allows(s.STREAM_OUTBOUND, "kefu.outbound.wechat")
    assert contract.allows(s.STREAM_OUTBOUND, "kefu.outbound.supervisor.billing")  # {department}
    assert contract.allows(s.STREAM_AUDIT, "kefu.audit.request.read")
    assert not contract.allows(s.STREAM_EVENTS, s.REQUEST_ASSIGNED)  # not declared by this service
    assert not contract.allows(s.STREAM_OUTBOUND, "kefu.outbound.supervisor.billing.extra")
    assert not contract.allows(s.STREAM_AUDIT, s.REQUEST_RECEIVED)  # declared, but for another stream


async def test_a_publisher_refuses_an_undeclared_contract_subject_before_sending() -> None:
    from shared.nats.publish import Contract, Publisher, Undeclared

    sent: list[str] = []

    class Recording:
        async def publish(self, subject: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(subject)
            return SimpleNamespace(stream=kwargs.get("stream"), duplicate=False)

    publisher = Publisher(Recording(), contract=Contract([]))  # type: ignore[arg-type]
    with pytest.raises(Undeclared):
        await publisher.raw(s.REQUEST_ASSIGNED, b"{}", msg_id="x", stream=s.STREAM_EVENTS)
    await publisher.raw("kefu.timers.schedule.routing.r1.sla", b"{}", msg_id="y", stream="KEFU_TIMERS_ROUTING")
    assert sent == ["kefu.timers.schedule.routing.r1.sla"]  # internal streams are not the contract
