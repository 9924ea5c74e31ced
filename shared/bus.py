"""NATS plumbing shared by every service: provisioning, publishing, settling messages.

Delivery guarantees (see docs/reliability.md):
- everything that matters is published to JetStream and the publish ack is awaited;
- every publish carries `Nats-Msg-Id`, derived from what is being published, so that a retry
  (after a crash, a timeout, a redelivery) is dropped by the stream's duplicate window;
- consumers are durable pull consumers with explicit acks and a finite `max_deliver`;
- a handler error is retried with a delayed NAK (a plain NAK would redeliver at once, and a
  consumer's BackOff only applies to ack timeouts); an error that can never succeed (`Permanent`,
  an undecodable event) and the last allowed delivery go to the dead-letter stream with the reason,
  then the message is terminated so the consumer moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import nats.aio.client
import nats.errors
import nats.js.errors
from faststream import BaseMiddleware
from faststream.exceptions import HandlerException, NackMessage, RejectMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext, JetStreamManager
from nats.js.api import (
    DiscardPolicy,
    Header,
    KeyValueConfig,
    PubAck,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from pydantic import BaseModel, ValidationError

from . import subjects as s
from .settings import KefuSettings

log = logging.getLogger("kefu.bus")


def _timeouts_as_nats_timeouts(fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """nats-py 2.16 can raise a bare asyncio.TimeoutError from PullSubscription.fetch (the path that
    avoids orphaned lingering pull requests) where it otherwise raises nats.errors.TimeoutError;
    FastStream 0.7's pull loop suppresses only the latter, so an idle consumer's loop crashed now and
    then and was restarted by FastStream's supervisor with an error log. Both mean "no message yet"."""

    async def fetch_converting_timeouts(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(*args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    fetch_converting_timeouts.__wrapped__ = fetch  # type: ignore[attr-defined]
    return fetch_converting_timeouts


def tune_nats_client() -> None:
    """Apply kefu's one change to nats-py's classes (`_timeouts_as_nats_timeouts`): called by a
    service at start-up, before its consumers start — never on import. Idempotent."""
    if not hasattr(JetStreamContext.PullSubscription.fetch, "__wrapped__"):
        JetStreamContext.PullSubscription.fetch = _timeouts_as_nats_timeouts(  # type: ignore[method-assign,assignment]
            JetStreamContext.PullSubscription.fetch)


class _HeaderLines:
    """Stands in for `email.parser.BytesParser` where nats-py's JetStreamManager.get_msg parses a
    stored message's headers (every KV get): NATS headers are not e-mail headers, and nats-py's
    own client moved to this byte-level parser for messages it receives (nats-io/nats.py#928,
    non-ASCII values were lost) but not here. py-spy: 3 % of routing's CPU was the e-mail parser."""

    @staticmethod
    def parsebytes(raw: bytes) -> dict[str, str]:
        return nats.aio.client.Client._parse_header_lines(raw)  # noqa: SLF001 - see the docstring


def plain_header_parsing(js: JetStreamContext) -> JetStreamContext:
    """Use `_HeaderLines` for the stored-message reads (KV gets) made through `js`."""
    if hasattr(js, "_hdr_parser") and hasattr(nats.aio.client.Client, "_parse_header_lines"):
        js._hdr_parser = _HeaderLines()  # type: ignore[assignment]  # noqa: SLF001 - see _HeaderLines
    return js


class AckingJetStream(JetStreamContext):
    """nats-py's JetStreamContext with a leaner request path under `publish` and the JetStream API
    calls: the same signatures, headers, errors and timeouts, with less work per message. Every
    JetStream write and read of a service goes through it: its own publishes, and KV puts, creates,
    updates, removals and gets, which nats-py's KeyValue makes with its context.

    nats-py makes each of them a `Client.request`: a new NUID and random token per message,
    `asyncio.wait_for` on the reply, and for a publish a PubAck built by introspecting the
    dataclass's fields. Here: one reply subscription on the service's own inbox, a counter for the
    token, a timer instead of wait_for (py-spy: that machinery was ~9 % of routing's CPU, which
    writes 7 times per request; client CPU per publish 84 -> 60 us)."""

    _PUBACK_FIELDS = frozenset(f.name for f in dataclasses.fields(PubAck))

    def __init__(self, conn: nats.aio.client.Client, **opts: Any) -> None:
        """Use `open`, which also subscribes to the replies."""
        super().__init__(conn, **opts)
        self._replies: dict[str, asyncio.Future[Msg]] = {}
        self._reply_prefix = conn.new_inbox() + "."  # under the service's inbox prefix (its NATS permissions)
        self._sent = 0

    @classmethod
    async def open(cls, conn: nats.aio.client.Client, **opts: Any) -> AckingJetStream:
        js = cls(conn, **opts)
        await conn.subscribe(js._reply_prefix + "*", cb=js._on_reply)
        return js

    async def _on_reply(self, msg: Msg) -> None:
        waiting = self._replies.get(msg.subject[len(self._reply_prefix):])
        if waiting is not None and not waiting.done():
            waiting.set_result(msg)

    async def _request(self, subject: str, payload: bytes, timeout: float,  # noqa: ASYNC109 - Client.request's
                       headers: dict[str, Any] | None = None) -> Msg:
        """`Client.request`'s contract: the reply, nats.errors.TimeoutError, NoRespondersError."""
        self._sent += 1
        token = str(self._sent)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Msg] = loop.create_future()
        self._replies[token] = answer
        try:
            await self._nc.publish(subject, payload, reply=self._reply_prefix + token, headers=headers)
            timer = loop.call_later(timeout, _time_out, answer)
            try:
                msg = await answer
            finally:
                timer.cancel()
        finally:
            del self._replies[token]
        if msg.headers and msg.headers.get(Header.STATUS) == "503":
            raise nats.errors.NoRespondersError
        return msg

    @staticmethod
    def _answer(msg: Msg) -> dict[str, Any]:
        """A JetStream reply's JSON, or its API error raised as nats-py raises it."""
        resp = json.loads(msg.data)
        if "error" in resp:
            raise nats.js.errors.APIError.from_error(resp["error"])
        return resp

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109 - nats-py's signature
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> PubAck:
        hdr = headers
        if stream is not None:
            hdr = hdr or {}
            hdr[Header.EXPECTED_STREAM] = stream
        if msg_ttl is not None:
            hdr = hdr or {}
            hdr[Header.MSG_TTL] = str(int(msg_ttl))
        try:
            msg = await self._request(subject, payload, self._timeout if timeout is None else timeout, hdr)
        except nats.errors.NoRespondersError:
            raise nats.js.errors.NoStreamResponseError from None
        return PubAck(**{k: v for k, v in self._answer(msg).items() if k in self._PUBACK_FIELDS})

    async def get_msg(
        self, stream_name: str, seq: int | None = None, subject: str | None = None, direct: bool | None = False,
        next: bool | None = False,  # noqa: A002 - nats-py's name
    ) -> RawStreamMsg:
        """A KV get (the last message of a key's subject) as a direct get through the reply mux;
        anything else as nats-py does it."""
        if not (direct and subject and seq is None and not next):
            return await super().get_msg(stream_name, seq, subject, direct, next)
        msg = await self._request(f"{self._prefix}.DIRECT.GET.{stream_name}.{subject}", b"", self._timeout)
        return JetStreamManager._lift_msg_to_raw_msg(msg)  # noqa: SLF001 - nats-py's own conversion

    async def _api_request(self, req_subject: str, req: bytes = b"", timeout: float = 5) -> dict[str, Any]:  # noqa: ASYNC109
        try:
            msg = await self._request(req_subject, req, timeout)
        except nats.errors.NoRespondersError:
            raise nats.js.errors.ServiceUnavailableError from None
        return self._answer(msg)


def _time_out(answer: asyncio.Future[Msg]) -> None:
    if not answer.done():
        answer.set_exception(nats.errors.TimeoutError())


DAY = 86_400.0
MAX_RAW_PAYLOAD = 1024 * 1024  # the bundled server's max_payload; intake enforces a lower limit


class Permanent(Exception):
    """A message that can never be handled, however often it is delivered."""


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
    # the JetStream API's JSON and base64 (nats-server CPU per read 100-119 -> 25-34 us). A follower
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
        # staff token revocations: read on every staff call by every service (direct gets); kept
        # 8 days, longer than any token lives (7 days at most), after which nothing it voids is left
        bucket(s.BUCKET_REVOCATIONS, 1, ttl=8 * DAY, direct=True),
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


def inbox_prefix(settings: KefuSettings) -> bytes:
    """Replies and pull deliveries come to an inbox of the service's own (least privilege)."""
    return f"_INBOX_{settings.service_name}.".encode()


class Publisher:
    """Publishes to JetStream, awaits the ack, and always sets `Nats-Msg-Id`."""

    def __init__(self, js: JetStreamContext, *, timeout: float = 5.0, attempts: int = 3, metrics: Any = None) -> None:
        self._js = js
        self._timeout = timeout
        self._attempts = attempts
        self._metrics = metrics
        self.outbound_gate: Any = None  # shared.outbox.OutboundGate where the service sends to customers

    @property
    def js(self) -> JetStreamContext:
        return self._js

    async def raw(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str,
        stream: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> PubAck:
        hdrs = {"Nats-Msg-Id": msg_id, **(headers or {})}
        for attempt in range(1, self._attempts + 1):
            try:
                ack = await self._js.publish(
                    subject, payload, timeout=self._timeout, stream=stream, headers=dict(hdrs)
                )
                if self._metrics is not None:
                    self._metrics.published.labels(ack.stream, "duplicate" if ack.duplicate else "stored").inc()
                return ack
            except (TimeoutError, nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
                # same Nats-Msg-Id: a retry after a lost ack is dropped by the duplicate window
                if attempt == self._attempts:
                    raise
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    async def model(
        self, subject: str, model: BaseModel, *, msg_id: str, stream: str = s.STREAM_EVENTS
    ) -> PubAck:
        return await self.raw(
            subject,
            model.model_dump_json().encode(),
            msg_id=msg_id,
            stream=stream,
            headers={"Content-Type": "application/json"},
        )


async def together(*operations: Awaitable[Any]) -> list[Any]:
    """Independent NATS operations in flight at once: the client writes them in one go and their
    answers come back together, so they cost about one round trip instead of one each. Waits for
    all of them to finish (none is left running), then raises the first failure, if any."""
    results = await asyncio.gather(*operations, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


DeadLetter = Callable[[Msg, str], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_deliver: int
    backoff: Sequence[float]

    def delay(self, num_delivered: int) -> float:
        """Delay before the next delivery after the `num_delivered`-th one failed."""
        return float(self.backoff[min(max(num_delivered, 1), len(self.backoff)) - 1])

    def gives_up(self, num_delivered: int) -> bool:
        return num_delivered >= self.max_deliver


def make_dead_letter(publisher: Publisher, consumer: str) -> DeadLetter:
    async def dead_letter(msg: Msg, reason: str) -> None:
        meta = msg.metadata
        headers = {
            "Kefu-Dlq-Reason": _header_safe(reason),
            "Kefu-Dlq-Consumer": consumer,
            "Kefu-Original-Subject": msg.subject,
            "Kefu-Original-Stream": meta.stream,
            "Kefu-Original-Seq": str(meta.sequence.stream),
            "Kefu-Deliveries": str(meta.num_delivered),
        }
        await publisher.raw(
            s.dlq_subject(consumer),
            msg.data[:MAX_RAW_PAYLOAD - 4096],
            msg_id=f"dlq:{meta.stream}:{meta.sequence.stream}:{consumer}",
            stream=s.STREAM_DLQ,
            headers=headers,
        )

    return dead_letter


def settle_middleware(
    policy: RetryPolicy, dead_letter: DeadLetter, on_redelivery: Callable[[str], None] = lambda consumer: None
) -> Callable[..., BaseMiddleware]:
    """FastStream middleware: ack on success, delayed NAK on error, dead-letter what can never work."""

    class Settle(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            raw_msg: Msg = msg.raw_message
            if raw_msg.reply and raw_msg.metadata.num_delivered > 1:
                on_redelivery(raw_msg.metadata.consumer or "")
            try:
                return await call_next(msg)
            except HandlerException:
                raise
            except Exception as exc:
                raw: Msg = msg.raw_message
                n = raw.metadata.num_delivered if raw.reply else policy.max_deliver
                permanent = isinstance(exc, Permanent | ValidationError | json.JSONDecodeError)
                if permanent or policy.gives_up(n):
                    reason = describe(exc)
                    log.error(
                        "dead-lettering message",
                        extra={"subject": raw.subject, "deliveries": n, "reason": reason},
                    )
                    await dead_letter(raw, reason)
                    raise RejectMessage() from exc
                delay = policy.delay(n)
                log.warning(
                    "handler failed, retrying",
                    extra={"subject": raw.subject, "deliveries": n, "delay": delay, "error": describe(exc)},
                )
                raise NackMessage(delay=delay) from exc

    return Settle


def describe(exc: BaseException) -> str:
    """A failure's reason for logs and dead-letter headers, without the data that caused it:
    pydantic's message quotes the input (a customer's words, contacts), so only locations and types."""
    if isinstance(exc, ValidationError):
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['type']}"
                          for e in exc.errors(include_input=False, include_url=False)[:5])
        return f"ValidationError: {where}"[:500]
    if isinstance(exc, json.JSONDecodeError):
        return f"JSONDecodeError: {exc.msg} at position {exc.pos}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def _header_safe(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:500]
