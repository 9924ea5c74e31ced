"""Each NATS user of deploy/nats/accounts.conf, as shipped, on a real nats-server: what the
independent probe did with a wider user is tried again and refused, and what each user needs for
its job still works (the services' half is test_nats_permissions.py; the adapters' half is here).

A refused publish shows as the server's "Permissions Violation" on the connection; a refused
JetStream call is also checked by its effect (the consumer is still there, the timer still fires)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.nats.logreader import LogReader
from tests.support.secured import ADAPTERS, PASSWORDS, ROOT, connect, password, standalone
from tests.support.services import common_settings, running, wait_until

pytestmark = pytest.mark.integration
ENTRIES = 20_000


@pytest.fixture
async def server(tmp_path: Path):
    with standalone(tmp_path) as url:
        done = subprocess.run([sys.executable, "-m", "devtools.provision"], cwd=ROOT, capture_output=True, text=True,
                              env={"KEFU_NATS_URL": url, "KEFU_NATS_USER": "admin", "PATH": "/usr/bin:/bin",
                                   "KEFU_NATS_PASSWORD": PASSWORDS["KEFU_NATS_ADMIN_PASSWORD"]}, timeout=60)
        assert done.returncode == 0, done.stderr
        admin = await connect(url, "admin", inbox="_INBOX")
        js = admin.jetstream()
        # the durables the services create, as they create them
        for stream, name, filt in ((s.STREAM_EVENTS, s.CONSUMER_ROUTING, s.REQUEST_RECEIVED),
                                   (s.STREAM_EVENTS, s.CONSUMER_FEEDBACK, s.REQUEST_RESOLVED),
                                   (s.STREAM_OUTBOUND, "adapter-wechat", "kefu.outbound.wechat")):
            await js.add_consumer(stream, ConsumerConfig(durable_name=name, name=name, filter_subject=filt,
                                                         ack_policy=AckPolicy.EXPLICIT))
        try:
            yield url, admin
        finally:
            await admin.close()


async def refused(url: str, user: str, subject: str, body: bytes = b"{}", *, subscribe: bool = False) -> list[str]:
    """Publish (or subscribe) as `user`; the server's permission errors for it."""
    errors: list[str] = []
    nc = await connect(url, user, errors)
    try:
        if subscribe:
            await nc.subscribe(subject)
        else:
            await nc.publish(subject, body, reply=f"_INBOX_{user}.probe")
        await nc.flush()

        async def violated() -> bool:
            return any("permissions violation" in e.lower() for e in errors)

        await wait_until(violated, timeout=5, what=f"{user} refused {subject}")
    finally:
        await nc.close()
    return errors


DENIED = [
    # metrics reads its own copy of the log: no consumer rights on KEFU_EVENTS at all
    ("metrics", "$JS.API.CONSUMER.DELETE.KEFU_EVENTS.routing"),
    ("metrics", "$JS.API.CONSUMER.MSG.NEXT.KEFU_EVENTS.routing"),
    ("metrics", "$JS.API.CONSUMER.CREATE.KEFU_EVENTS"),  # a legacy create naming "routing" rewrites it
    ("metrics", "$JS.API.CONSUMER.CREATE.KEFU_EVENTS.spy.kefu.events.survey.sent"),
    ("metrics", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.spy.kefu.outbound.sms"),
    ("metrics", "$JS.API.DIRECT.GET.KEFU_OUTBOUND"),  # the log only: never the messages to customers
    ("metrics", s.REQUEST_RECEIVED),
    # the console reads the log and routing's records, and writes nothing
    ("console", s.REQUEST_RECEIVED),
    ("console", "$KV.kefu_requests.req_x"),
    ("console", "$KV.kefu_staff_revocations.a1"),  # a revocation is routing's to write
    ("console", "$JS.API.CONSUMER.CREATE.KEFU_EVENTS.spy.kefu.events.>"),
    ("console", "$JS.API.DIRECT.GET.KEFU_OUTBOUND"),  # never the messages to customers
    ("console", "$JS.API.STREAM.MSG.GET.KV_kefu_customers"),
    ("console", "$JS.API.STREAM.MSG.GET.KV_kefu_threads"),
    ("console", "kefu.audit.request.read"),
    # the gateway: WeChat's and SMS's pushes and messages, and delivery reports; nothing of kefu's own
    ("gateway", s.REQUEST_RECEIVED),
    ("gateway", "kefu.intake.app"),  # the app, the portal, the desk and phones are not its channels
    ("gateway", "kefu.outbound.sms"),  # it reads customers' messages, never writes them
    ("gateway", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.adapter-app.kefu.outbound.app"),
    ("gateway", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.spy.kefu.outbound.supervisor.business"),
    ("gateway", "$JS.API.DIRECT.GET.KEFU_EVENTS"),
    ("gateway", "$KV.kefu_customers.c1"),
    ("gateway", "$KV.kefu_threads.x"),  # its one bucket is kefu_gateway_mail
    # routing publishes the events it decides, schedules and purges only its own timers
    ("routing", s.REQUEST_RECEIVED),
    ("routing", s.REQUEST_MESSAGE),  # follow-ups are intake's decision
    ("routing", s.MESSAGE_IGNORED),
    ("routing", s.SURVEY_ANSWERED),
    ("routing", "$JS.API.STREAM.PURGE.KEFU_TIMERS_FEEDBACK"),
    ("routing", "kefu.timers.schedule.feedback.srv_x.expire"),
    ("routing", "kefu.timers.fire.routing.req_x.sla"),
    ("routing", "$JS.API.CONSUMER.DELETE.KEFU_EVENTS.feedback"),
    ("routing", "kefu.intake.sms"),
    ("routing", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.spy.kefu.outbound.sms"),  # it sends there, never reads
    # feedback likewise
    ("feedback", "$JS.API.STREAM.PURGE.KEFU_TIMERS_ROUTING"),
    ("feedback", "kefu.timers.schedule.routing.req_x.sla"),
    ("feedback", s.REQUEST_RESOLVED),
    ("feedback", s.REQUEST_RECEIVED),
    ("feedback", "$JS.API.CONSUMER.MSG.NEXT.KEFU_EVENTS.routing"),
    ("feedback", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND"),  # survey links: only the channel's adapter reads them
    # intake
    ("intake", s.REQUEST_ASSIGNED),
    ("intake", s.REQUEST_REPLIED),  # replies are routing's
    ("intake", s.REQUEST_REOPENED),
    ("intake", "$JS.API.CONSUMER.CREATE.KEFU_EVENTS.routing"),  # its own consumer by name, no other
    ("feedback", "$JS.API.STREAM.MSG.GET.KV_kefu_threads"),  # conversations are intake's
    ("intake", "kefu.outbound.sms"),
    ("intake", "$JS.API.CONSUMER.DELETE.KEFU_EVENTS.routing"),
    ("intake", "$JS.API.STREAM.PURGE.KEFU_INTAKE"),
    # an adapter: its own channel only
    ("adapter-sms", "kefu.intake.wechat"),
    ("adapter-sms", "kefu.outbound.sms"),
    ("adapter-sms", s.REQUEST_RECEIVED),
    ("adapter-sms", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND"),
    ("adapter-sms", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.adapter-sms.kefu.outbound.>"),
    ("adapter-sms", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.adapter-wechat.kefu.outbound.wechat"),
    ("adapter-sms", "$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.spy.kefu.outbound.supervisor.business"),
    ("adapter-sms", "$JS.API.CONSUMER.MSG.NEXT.KEFU_OUTBOUND.adapter-wechat"),
    ("adapter-sms", "$JS.API.CONSUMER.DELETE.KEFU_OUTBOUND.adapter-wechat"),
    ("adapter-sms", "$JS.ACK.KEFU_OUTBOUND.adapter-wechat.1.1.1.1.0"),
]


@pytest.mark.parametrize(("user", "subject"), DENIED, ids=[f"{u}:{subj}" for u, subj in DENIED])
async def test_a_user_is_refused_outside_its_job(server, user: str, subject: str) -> None:
    url, admin = server
    errors = await refused(url, user, subject, json.dumps({
        "stream_name": "KEFU_EVENTS", "config": {"name": "routing", "filter_subject": ">", "ack_policy": "explicit"},
    }).encode())
    assert any(subject.lower() in e.lower() for e in errors), errors
    # and nothing happened: the durables are still there with their own filters
    js = admin.jetstream()
    assert (await js.consumer_info(s.STREAM_EVENTS, s.CONSUMER_ROUTING)).config.filter_subject == s.REQUEST_RECEIVED
    assert (await js.consumer_info(s.STREAM_OUTBOUND, "adapter-wechat")).config.filter_subject == "kefu.outbound.wechat"


@pytest.mark.parametrize("subject", ["_INBOX_adapter-wechat.>", "_INBOX_routing.>", "kefu.outbound.>", "_INBOX.>"])
async def test_an_adapter_cannot_listen_to_other_replies_or_messages(server, subject: str) -> None:
    url, _ = server
    errors = await refused(url, "adapter-sms", subject, subscribe=True)
    assert any(subject.lower() in e.lower() for e in errors), errors


async def test_a_schedule_cannot_target_another_services_timers(server) -> None:
    """The server checks a schedule's publish subject against the user, and its target against
    the stream: routing's stream holds only routing's subjects, so feedback's timer cannot be aimed at."""
    url, admin = server
    routing = await connect(url, "routing")
    try:
        with pytest.raises(nats.js.errors.BadRequestError, match="target is invalid"):
            await routing.jetstream().publish(
                "kefu.timers.schedule.routing.req_x.sla", b"{}", stream=s.timers_stream("routing"),
                headers={"Nats-Schedule": "@every 1s", "Nats-Schedule-Target": "kefu.timers.fire.feedback.srv_x.expire"})
        # its own timers it schedules and cancels
        ack = await routing.jetstream().publish(
            "kefu.timers.schedule.routing.req_x.sla", b"{}", stream=s.timers_stream("routing"),
            headers={"Nats-Schedule": "@at 2099-01-01T00:00:00Z",
                     "Nats-Schedule-Target": "kefu.timers.fire.routing.req_x.sla"})
        await routing.jetstream().purge_stream(s.timers_stream("routing"), subject="kefu.timers.schedule.routing.req_x.sla")
    finally:
        await routing.close()
    assert ack.stream == "KEFU_TIMERS_ROUTING"
    feedback_timers = await admin.jetstream().stream_info(s.timers_stream("feedback"))
    assert feedback_timers.state.messages == 0


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_each_adapter_publishes_and_delivers_its_own_channel(server, adapter: str) -> None:
    url, admin = server
    channel = adapter.removeprefix("adapter-")
    for i in range(3):
        await admin.jetstream().publish(f"kefu.outbound.{channel}", json.dumps({"n": i}).encode(),
                                        headers={"Nats-Msg-Id": f"{channel}-{i}"})
    await admin.jetstream().publish("kefu.outbound.supervisor.business", b"{}")
    nc = await connect(url, adapter)
    try:
        js = nc.jetstream()
        ack = await js.publish(f"kefu.intake.{channel}", b"raw payload", headers={"Nats-Msg-Id": f"in-{channel}"})
        sub = await js.pull_subscribe(f"kefu.outbound.{channel}", durable=adapter, stream=s.STREAM_OUTBOUND)
        got = await sub.fetch(3, timeout=5)
        for msg in got:
            await msg.ack_sync()
        info = await js.consumer_info(s.STREAM_OUTBOUND, adapter)
    finally:
        await nc.close()
    assert ack.stream == s.STREAM_INTAKE
    assert [json.loads(m.data)["n"] for m in got] == [0, 1, 2]
    assert info.ack_floor.stream_seq == got[-1].metadata.sequence.stream and info.num_pending == 0


async def test_an_adapter_cannot_widen_its_own_consumer(server) -> None:
    """The create subject names consumer and filter; the server refuses a body that differs."""
    url, _ = server
    nc = await connect(url, "adapter-sms")
    try:
        answer = await nc.request("$JS.API.CONSUMER.CREATE.KEFU_OUTBOUND.adapter-sms.kefu.outbound.sms", json.dumps({
            "stream_name": "KEFU_OUTBOUND", "config": {"name": "adapter-sms", "durable_name": "adapter-sms",
                                                      "filter_subjects": ["kefu.outbound.>"],
                                                      "ack_policy": "explicit"}}).encode(), timeout=5)
    finally:
        await nc.close()
    assert json.loads(answer.data)["error"]["err_code"] == 10137


async def test_metrics_reads_the_log_by_sequence_with_no_consumer_right(server) -> None:
    """metrics' whole job on the log: batched direct gets, and the stream's last sequence."""
    url, admin = server
    for i in range(5):
        await admin.jetstream().publish(s.REQUEST_REJECTED, json.dumps({"n": i}).encode())
    nc = await connect(url, "metrics")
    try:
        entries = await LogReader(nc, s.STREAM_EVENTS).batch(seq=1)
        last = (await nc.jetstream().stream_info(s.STREAM_EVENTS)).state.last_seq
    finally:
        await nc.close()
    assert [json.loads(e.data)["n"] for e in entries] == [0, 1, 2, 3, 4] and entries[-1].seq == last


async def test_the_shared_adapter_user_is_gone(server) -> None:
    url, _ = server
    with pytest.raises(nats.errors.Error):
        await nats.connect(url, user="adapter", password="pw-adapter", allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=2)


async def test_routings_queue_mirror_follows_thousands_of_entries_under_its_own_user(server) -> None:
    """routing's in-memory queues are KV watchers: ordered push consumers with flow control, like
    metrics' replay, so its user must answer the server's flow-control requests on its buckets.
    Without the grant the watcher of a 20,000-entry queue stalls and routing never starts."""
    url, admin = server
    waiting = await admin.jetstream().key_value(s.BUCKET_WAITING)
    settings = RoutingSettings(**common_settings(url, nats_user="routing", nats_password=password("routing"),
                                                 provision=False, config_dir=ROOT / "config"))
    for first in range(0, ENTRIES, 500):  # a long queue when routing (re)starts: its watcher replays it
        await asyncio.gather(*(waiting.put(f"req_{i:026d}", json.dumps({
            "request_id": f"req_{i:026d}", "queue": "business.normal", "department": "business",
            "priority": "normal", "emergency": False, "received_at": "2026-12-01T09:00:00+08:00",
            "language": "zh", "skills": ["x" * 40] * 4}).encode()) for i in range(first, first + 500)))
    async with running(routing_app, settings) as routing, routing.client() as http:
        async def all_listed() -> bool:
            listing = await http.get("/v1/queues/business.normal")
            return len(listing.json()["waiting"]) == ENTRIES

        await wait_until(all_listed, timeout=60, what=f"{ENTRIES} waiting requests in routing's mirror")
