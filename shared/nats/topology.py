"""What kefu declares on the server (streams, KV buckets, their limits), how a service connects, and
provisioning: create or update idempotently, migrate what older versions left.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from .. import mailparts
from ..contract import subjects as s
from ..settings import KefuSettings

log = logging.getLogger("kefu.topology")


DAY = 86_400.0


MAX_RAW_PAYLOAD = 1024 * 1024  # the bundled server's max_payload; intake enforces a lower limit


def broker_kwargs(settings: KefuSettings) -> dict[str, Any]:
    """Keyword arguments for FastStream's `NatsBroker(...)`: credentials go in `security`."""
    from faststream.nats import NatsCredentials, NatsUserPassword

    kwargs = connect_kwargs(settings)
    user, password, creds = kwargs.pop("user", None), kwargs.pop("password", None), kwargs.pop("user_credentials", None)
    if user:
        kwargs["security"] = NatsUserPassword(username=user, password=password or "")
    elif creds:
        kwargs["security"] = NatsCredentials(credentials=creds)
    return kwargs


def connect_kwargs(settings: KefuSettings) -> dict[str, Any]:
    """Keyword arguments for nats-py's `nats.connect(...)` from settings."""
    kwargs: dict[str, Any] = {
        "servers": [u.strip() for u in settings.nats_url.split(",") if u.strip()],
        "name": f"kefu-{settings.service_name}",
        # a reply inbox of its own, so a service's NATS user needs no blanket _INBOX.> permission
        "inbox_prefix": inbox_prefix(settings).rstrip(b"."),
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
    }
    if settings.nats_user:
        kwargs["user"] = settings.nats_user
        if settings.nats_password is not None:
            kwargs["password"] = settings.nats_password.get_secret_value()
    if settings.nats_creds:
        kwargs["user_credentials"] = str(settings.nats_creds)
    return kwargs


def inbox_prefix(settings: KefuSettings) -> bytes:
    """Replies and pull deliveries come to an inbox of the service's own (least privilege)."""
    return f"_INBOX_{settings.service_name}.".encode()


def stream_configs(settings: KefuSettings) -> list[StreamConfig]:
    # limits retention (history is kept, not consumed away); discard NEW at the size bound: a full
    # stream refuses the publish (the publisher sees the error and retries) instead of silently
    # dropping the oldest requests
    common = StreamConfig(
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.NEW,
        max_bytes=settings.stream_max_bytes or -1,
        num_replicas=settings.stream_replicas,
        duplicate_window=float(settings.duplicate_window_seconds),
        max_msg_size=MAX_RAW_PAYLOAD,
    )

    def stream(name: str, subjects: list[str] | None, max_age: float, **more: Any) -> StreamConfig:
        return replace(common, name=name, subjects=subjects, max_age=max_age, **more)

    return [
        # raw payloads as adapters sent them: nothing is lost while intake is down, and every
        # accepted payload can be replayed for 30 days
        stream(s.STREAM_INTAKE, [s.INTAKE_ALL], settings.retention_raw_days * DAY),
        # the event log: history of every request, source of the indicators. metrics reads it by
        # sequence with direct gets (no consumer), which any replica answers
        stream(s.STREAM_EVENTS, [s.EVENTS_ALL], settings.retention_events_days * DAY, allow_direct=True),
        stream(s.STREAM_OUTBOUND, [s.OUTBOUND_ALL], settings.retention_outbound_days * DAY),
        stream(s.STREAM_REJECTED, [s.REJECTED_ALL], settings.retention_rejected_days * DAY),
        # who read which record through the APIs
        stream(s.STREAM_AUDIT, [s.AUDIT_ALL], settings.retention_audit_days * DAY),
        # dead letters: what a consumer gave up on (with the reason), and the server's max-delivery
        # advisories, which also cover a message that killed its process on every delivery
        stream(s.STREAM_DLQ, [s.DLQ_ALL, s.MAX_DELIVERIES_ADVISORIES], 90 * DAY),
        # durable timers: schedules fire at their time even if no process of the service is running
        # then. A schedule is kept at most 60 days, longer than any deadline the SLA policies can set
        # (a paused request has no timers; resuming schedules new ones). One stream per service: a
        # schedule may only target its own stream, so no service can fire or purge another's timers.
        # (the server allows message schedules only with discard: old; fired timers are the oldest)
        *(stream(s.timers_stream(service), [s.timers_subjects(service)], 60 * DAY, allow_msg_schedules=True,
                 discard=DiscardPolicy.OLD) for service in s.TIMER_SERVICES),
    ]


def bucket_configs(settings: KefuSettings) -> list[KeyValueConfig]:
    common = KeyValueConfig(bucket="", storage=StorageType.FILE, replicas=settings.stream_replicas)
    records_ttl = settings.retention_records_days * DAY if settings.retention_records_days else None

    def bucket(name: str, history: int, ttl: float | None = None, direct: bool = False) -> KeyValueConfig:
        return replace(common, bucket=name, history=history, ttl=ttl, direct=direct)

    # Intake's reads (2-3 per request) are direct gets: any replica answers from its store, without
    # the JetStream API's JSON and base64, a fraction of the server's CPU per read. A follower
    # may answer a few milliseconds behind the leader, which these reads tolerate: a source seen a
    # moment ago is still dropped by its Nats-Msg-Id, a customer registered a moment ago is
    # recognised from the next message on. Buckets whose writer reads its own writes (routing's
    # records, agents, queues, outbox; feedback's) stay leader-served (docs/reliability.md).
    return [
        bucket(s.BUCKET_CUSTOMERS, 5, direct=True),
        bucket(s.BUCKET_CONTACTS, 1, direct=True),
        bucket(s.BUCKET_INTAKE_SOURCES, 1, ttl=400 * DAY, direct=True),
        # a signature is refused twice within its validity (5 min either way): kept 10 minutes
        bucket(s.BUCKET_WEBHOOK_SIGNATURES, 1, ttl=600),
        bucket(s.BUCKET_REQUESTS, 10, ttl=records_ttl),
        bucket(s.BUCKET_AGENTS, 5),
        bucket(s.BUCKET_WAITING, 1),
        bucket(s.BUCKET_PENDING, 1),
        bucket(s.BUCKET_OUTBOX, 1),
        bucket(s.BUCKET_FEEDBACK_REQUESTS, 3, ttl=records_ttl),
        bucket(s.BUCKET_SURVEYS, 3, ttl=records_ttl),
        bucket(s.BUCKET_OPEN_SURVEYS, 1, direct=True),
        bucket(s.BUCKET_FOLLOWUPS, 3, ttl=records_ttl),
        # messages sent per customer per day (the outbound cap): two days cover any time zone
        bucket(s.BUCKET_OUTBOUND_CAPS, 1, ttl=2 * DAY),
        # intake's conversations: per sender their recent requests, per request its sender; written
        # with revision checks by intake alone, which reads its own writes (leader-served)
        bucket(s.BUCKET_THREADS, 1, ttl=records_ttl or 400 * DAY),
        # staff token revocations: read on every staff call by every service (direct gets); kept
        # 8 days, longer than any token lives (7 days at most), after which nothing it voids is left
        bucket(s.BUCKET_REVOCATIONS, 1, ttl=8 * DAY, direct=True),
        # the gateway's mailboxes: how far each was read (UIDVALIDITY and last UID); one reader each
        bucket(s.BUCKET_GATEWAY_MAIL, 1),
    ]


MIN_SERVER = (2, 12)  # the timer streams rely on message schedules (allow_msg_schedules), new in 2.12


def require_server(major: int, minor: int) -> None:
    """Refuse to start against a nats-server too old for kefu's streams: an older server has no
    message schedules (it ignores the setting or refuses the stream), and SLA deadlines would never
    fire. 0.0: not reported."""
    if (major, minor) != (0, 0) and (major, minor) < MIN_SERVER:
        raise SystemExit(f"nats-server {major}.{minor} is too old: kefu needs {MIN_SERVER[0]}.{MIN_SERVER[1]} "
                         "or later (the timer streams use message schedules)")


async def migrate_legacy_timers(js: JetStreamContext, settings: KefuSettings) -> int:
    """Move the timers of kefu < 0.3's single KEFU_TIMERS stream into the per-service streams.

    Crash-safe and idempotent: the legacy stream first gives up its subjects (so the new streams
    may take them; its messages stay), then every pending schedule and every fired timer its
    consumer has not acknowledged is copied (each with a Nats-Msg-Id, so a re-run copies nothing
    twice), and only then is the legacy stream deleted. A timer that fires twice in between is
    harmless: handlers check that a fired timer still applies. Returns the messages copied."""
    try:
        info = await js.stream_info(s.LEGACY_STREAM_TIMERS)
    except nats.js.errors.NotFoundError:
        return 0
    if info.config.subjects != ["kefu.timers-legacy.>"]:
        info.config.subjects = ["kefu.timers-legacy.>"]
        await js.update_stream(info.config)
    for service in s.TIMER_SERVICES:
        cfg = next(c for c in stream_configs(settings) if c.name == s.timers_stream(service))
        try:
            await js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            await js.update_stream(cfg)
    floors: dict[str, int] = {}
    for service, consumer in (("routing", s.CONSUMER_ROUTING_TIMERS), ("feedback", s.CONSUMER_FEEDBACK_TIMERS)):
        try:
            floors[service] = (await js.consumer_info(s.LEGACY_STREAM_TIMERS, consumer)).ack_floor.stream_seq or 0
        except nats.js.errors.NotFoundError:
            floors[service] = 0
    latest: dict[str, RawStreamMsg] = {}  # subject -> its last message (a schedule replaces its subject's)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(s.LEGACY_STREAM_TIMERS, seq)
        except nats.js.errors.NotFoundError:
            continue
        latest[msg.subject or ""] = msg
    copied = 0
    for subject, msg in latest.items():
        kind, _, rest = subject.removeprefix("kefu.timers.").partition(".")
        service = rest.split(".", 1)[0]
        if service not in s.TIMER_SERVICES or kind not in ("schedule", "fire"):
            continue
        if kind == "fire" and (msg.seq or 0) <= floors[service]:
            continue  # handled already
        # a schedule keeps its Nats-Schedule* headers; a fired timer is copied as a plain message
        headers = {k: v for k, v in (msg.headers or {}).items()
                   if kind == "schedule" and k.startswith("Nats-Schedule")}
        await js.publish(subject, msg.data or b"", stream=s.timers_stream(service),
                         headers=headers | {"Nats-Msg-Id": f"timer-migration:{msg.seq}"})
        copied += 1
    await js.delete_stream(s.LEGACY_STREAM_TIMERS)
    log.warning("migrated legacy timers", extra={"copied": copied})
    return copied


async def provision(js: JetStreamContext, settings: KefuSettings) -> None:
    """Create or update every stream and bucket. Idempotent; any service may run it first."""
    await migrate_legacy_timers(js, settings)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(s.LEGACY_STREAM_METRICS)  # a copy of the log nothing reads any more
    for cfg in stream_configs(settings):
        try:
            await js.add_stream(cfg)
        except nats.js.errors.BadRequestError:
            # exists with another configuration (e.g. an older version of kefu): bring it in line
            await js.update_stream(cfg)
    with contextlib.suppress(nats.js.errors.BadRequestError):  # exists: kept as it is
        await js.create_object_store(mailparts.BUCKET, config=ObjectStoreConfig(
            bucket=mailparts.BUCKET, ttl=settings.retention_raw_days * DAY, max_bytes=settings.attachments_max_bytes or -1,
            replicas=settings.stream_replicas, description="Large mail's attachments (shared/mailparts.py)"))
    for kv in bucket_configs(settings):
        try:
            await js.create_key_value(kv)
        except nats.js.errors.BadRequestError:
            # exists with other settings: keep it, but apply a changed retention (KEFU_RETENTION_RECORDS_DAYS)
            # and allow per-message TTLs (removal markers that expire, shared.kv.remove), which
            # buckets made by older nats-py versions lack, and direct gets where kefu wants them
            info = await js.stream_info(f"KV_{kv.bucket}")
            if ((info.config.max_age or 0) != (kv.ttl or 0) or not info.config.allow_msg_ttl
                    or bool(info.config.allow_direct) != bool(kv.direct)):
                info.config.max_age = kv.ttl or 0
                info.config.allow_msg_ttl = True
                info.config.allow_direct = bool(kv.direct)
                await js.update_stream(info.config)


async def verify(js: JetStreamContext, settings: KefuSettings) -> None:
    """Without provisioning rights: fail clearly when a stream the service uses is missing."""
    for name in s.streams_of(settings.service_name) or tuple(c.name or "" for c in stream_configs(settings)):
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            raise SystemExit(f"stream {name} is missing: run `python -m devtools.provision` first") from None
