"""Subject, stream and bucket names: the one place the bus vocabulary is spelled."""

from __future__ import annotations

from typing import Final

from .enums import Channel

# What adapters publish: kefu.intake.<channel>
INTAKE_PREFIX: Final = "kefu.intake"
INTAKE_ALL: Final = "kefu.intake.>"

# What kefu publishes about requests
EVENTS_ALL: Final = "kefu.events.>"
REQUEST_RECEIVED: Final = "kefu.events.request.received"
REQUEST_REJECTED: Final = "kefu.events.request.rejected"
REQUEST_ASSIGNED: Final = "kefu.events.request.assigned"
REQUEST_ACCEPTED: Final = "kefu.events.request.accepted"
REQUEST_TRANSFERRED: Final = "kefu.events.request.transferred"
# an agent corrected routing's judgement (category, priority, or the department by a transfer)
REQUEST_CORRECTED: Final = "kefu.events.request.corrected"
REQUEST_ESCALATED: Final = "kefu.events.request.escalated"
REQUEST_RESOLVED: Final = "kefu.events.request.resolved"
REQUEST_REOPENED: Final = "kefu.events.request.reopened"
REQUEST_CLOSED: Final = "kefu.events.request.closed"
SLA_WARNING: Final = "kefu.events.sla.warning"
SLA_BREACHED: Final = "kefu.events.sla.breached"
SURVEY_SENT: Final = "kefu.events.survey.sent"
SURVEY_ANSWERED: Final = "kefu.events.survey.answered"
SURVEY_EXPIRED: Final = "kefu.events.survey.expired"
# kefu extension: a customer's answer as given (survey page or a reply by SMS/WeChat), before
# feedback records it as survey.answered
SURVEY_REPLIED: Final = "kefu.events.survey.replied"
# kefu extensions of the contract: routing's steps between assignment and resolution
REQUEST_NOTED: Final = "kefu.events.request.noted"
REQUEST_PENDING: Final = "kefu.events.request.pending"
REQUEST_RESUMED: Final = "kefu.events.request.resumed"
REQUEST_DISPATCHED: Final = "kefu.events.request.dispatched"
# conversations (docs/conversations.md)
REQUEST_MESSAGE: Final = "kefu.events.request.message"  # a follow-up appended to a request (intake)
REQUEST_REPLIED: Final = "kefu.events.request.replied"  # an agent answered in the thread (routing)
REQUEST_CUSTOMER_WROTE: Final = "kefu.events.request.customer_wrote"  # for the holder (routing; kefu extension)
MESSAGE_IGNORED: Final = "kefu.events.message.ignored"  # auto-generated mail, never answered (intake)
OUTBOUND_FAILED: Final = "kefu.events.outbound.failed"  # a message kefu sent that did not arrive (intake, gateway)
OUTBOUND_DELIVERED: Final = "kefu.events.outbound.delivered"  # a platform confirmed delivery (gateway)
FOLLOWUP_SCHEDULED: Final = "kefu.events.followup.scheduled"
FOLLOWUP_COMPLETED: Final = "kefu.events.followup.completed"

# Messages for customers, delivered by the channel's adapter: kefu.outbound.<channel>
OUTBOUND_PREFIX: Final = "kefu.outbound"
OUTBOUND_ALL: Final = "kefu.outbound.>"

# Raw payloads that could not be understood, kept for inspection and replay: kefu.rejected.<channel>
REJECTED_PREFIX: Final = "kefu.rejected"
REJECTED_ALL: Final = "kefu.rejected.>"

# Messages a consumer gave up on after its last delivery: kefu.dlq.<consumer>
DLQ_PREFIX: Final = "kefu.dlq"
DLQ_ALL: Final = "kefu.dlq.>"
# the server's advisory when a message ran out of deliveries (e.g. it crashed its process each time)
MAX_DELIVERIES_ADVISORIES: Final = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"

# Durable timers (server-side message schedules, see shared/nats/timers.py): a schedule on
# kefu.timers.schedule.<service>.<key>.<timer> fires kefu.timers.fire.<service>.<key>.<timer>
TIMERS_ALL: Final = "kefu.timers.>"
TIMERS_SCHEDULE_PREFIX: Final = "kefu.timers.schedule"
TIMERS_FIRE_PREFIX: Final = "kefu.timers.fire"

# Audit trail: who read or changed what through the HTTP APIs: kefu.audit.<action>
AUDIT_PREFIX: Final = "kefu.audit"
AUDIT_ALL: Final = "kefu.audit.>"

# JetStream streams
STREAM_INTAKE: Final = "KEFU_INTAKE"
STREAM_EVENTS: Final = "KEFU_EVENTS"
STREAM_OUTBOUND: Final = "KEFU_OUTBOUND"
STREAM_REJECTED: Final = "KEFU_REJECTED"
STREAM_DLQ: Final = "KEFU_DLQ"
# one timer stream per service: the server only lets a schedule target a subject of its own stream,
# so a service can neither fire nor purge another service's timers (docs/security.md)
STREAM_TIMERS_ROUTING: Final = "KEFU_TIMERS_ROUTING"
STREAM_TIMERS_FEEDBACK: Final = "KEFU_TIMERS_FEEDBACK"
LEGACY_STREAM_TIMERS: Final = "KEFU_TIMERS"  # before 0.3: one stream for both; devtools.provision migrates it
TIMER_SERVICES: Final = ("routing", "feedback")
STREAM_AUDIT: Final = "KEFU_AUDIT"
# an earlier design's mirror of KEFU_EVENTS for metrics (it now reads KEFU_EVENTS by direct gets):
# devtools.provision deletes it where it exists
LEGACY_STREAM_METRICS: Final = "KEFU_METRICS"

# JetStream key-value buckets
BUCKET_CUSTOMERS: Final = "kefu_customers"  # customer_id -> CustomerRecord
BUCKET_CONTACTS: Final = "kefu_contacts"  # hashed contact -> customer_id
BUCKET_INTAKE_SOURCES: Final = "kefu_intake_sources"  # hashed (channel, source id) -> request_id
BUCKET_WEBHOOK_SIGNATURES: Final = "kefu_webhook_signatures"  # signatures seen in the last 10 minutes
BUCKET_REQUESTS: Final = "kefu_requests"  # request_id -> routing's RequestRecord
BUCKET_AGENTS: Final = "kefu_agents"  # agent_id -> Agent (profile, status, active requests)
BUCKET_WAITING: Final = "kefu_waiting"  # request_id -> Waiting (requests queued for an agent)
BUCKET_PENDING: Final = "kefu_pending"  # customer hash -> request ids waiting on that customer
BUCKET_OUTBOX: Final = "kefu_outbox"  # request_id -> version whose events may not be published yet
BUCKET_FEEDBACK_REQUESTS: Final = "kefu_feedback_requests"  # request_id -> feedback's view of the request
BUCKET_SURVEYS: Final = "kefu_surveys"  # survey_id -> Survey (no link secret stored)
BUCKET_OPEN_SURVEYS: Final = "kefu_open_surveys"  # hashed contact -> survey_id a reply may answer
BUCKET_FOLLOWUPS: Final = "kefu_followups"  # followup_id -> Followup
BUCKET_OUTBOUND_CAPS: Final = "kefu_outbound_caps"  # hashed contact.day -> messages sent that day
BUCKET_THREADS: Final = "kefu_threads"  # hashed sender -> their recent requests and decisions (intake)
BUCKET_GATEWAY_MAIL: Final = "kefu_gateway_mail"  # mailbox -> how far the gateway has read it (IMAP UIDs)
BUCKET_REVOCATIONS: Final = "kefu_staff_revocations"  # staff subject -> tokens issued before `not_before` are void

# Durable consumer names
CONSUMER_INTAKE: Final = "intake"
CONSUMER_INTAKE_THREADS: Final = "intake-threads"
CONSUMER_ROUTING_MESSAGES: Final = "routing-messages"
CONSUMER_ROUTING_UNDELIVERED: Final = "routing-undelivered"
CONSUMER_ROUTING: Final = "routing"
CONSUMER_ROUTING_TIMERS: Final = "routing-timers"
CONSUMER_ROUTING_REOPENED: Final = "routing-reopened"
CONSUMER_FEEDBACK: Final = "feedback"
CONSUMER_FEEDBACK_ANSWERS: Final = "feedback-answers"
CONSUMER_FEEDBACK_TIMERS: Final = "feedback-timers"


def streams_of(service: str) -> tuple[str, ...]:
    """The streams a service reads or writes (what it checks at start, and what its NATS user may see)."""
    uses = {
        "intake": (STREAM_INTAKE, STREAM_EVENTS, STREAM_REJECTED, STREAM_DLQ, STREAM_AUDIT),
        "routing": (STREAM_EVENTS, STREAM_OUTBOUND, STREAM_DLQ, STREAM_AUDIT, STREAM_TIMERS_ROUTING),
        "feedback": (STREAM_EVENTS, STREAM_OUTBOUND, STREAM_DLQ, STREAM_AUDIT, STREAM_TIMERS_FEEDBACK),
        "metrics": (STREAM_EVENTS, STREAM_AUDIT),
        "console": (STREAM_EVENTS,),
        "gateway": (STREAM_OUTBOUND,),
    }
    return uses.get(service, ())


def timers_stream(service: str) -> str:
    """`routing` -> `KEFU_TIMERS_ROUTING`: the stream holding a service's schedules and fired timers."""
    if service not in TIMER_SERVICES:
        raise ValueError(f"no timer stream for {service!r}")
    return f"KEFU_TIMERS_{service.upper()}"


def timers_subjects(service: str) -> str:
    """Schedules and fired timers of one service: kefu.timers.<schedule|fire>.<service>.>"""
    return f"kefu.timers.*.{service}.>"


def intake_subject(channel: Channel | str) -> str:
    return f"{INTAKE_PREFIX}.{Channel(channel).value}"


def outbound_subject(channel: Channel | str) -> str:
    return f"{OUTBOUND_PREFIX}.{Channel(channel).value}"


def rejected_subject(channel: str, rejection_id: str | None = None) -> str:
    """`kefu.rejected.<channel>.<rejection id>`: the id handed out in the 4xx answer finds the
    payload (last message on `kefu.rejected.*.<id>`). An unknown channel name is kept under
    "unknown" rather than becoming a subject token."""
    name = channel if channel in Channel.__members__.values() else "unknown"
    return f"{REJECTED_PREFIX}.{name}" + (f".{rejection_id}" if rejection_id else "")


def audit_subject(action: str) -> str:
    """`request.read` -> `kefu.audit.request.read`."""
    return f"{AUDIT_PREFIX}.{action}"


def dlq_subject(consumer: str) -> str:
    return f"{DLQ_PREFIX}.{consumer}"


def channel_of_intake_subject(subject: str) -> str:
    """`kefu.intake.sms` -> `sms` (whatever the last token is; validation is the parser's job)."""
    return subject.removeprefix(INTAKE_PREFIX + ".")
