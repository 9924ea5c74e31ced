"""The request lifecycle as pure transitions: record + command + now -> new record.

Each transition appends to the history, bumps `version` and puts the events it causes in the
record's outbox (published after the record is stored). Invalid transitions raise
`InvalidTransition` (HTTP 409).

    queued --offer--> offered --accept--> accepted --pending--> pending --reply--> accepted
       ^                 |  (timeout)        |                                       |
       +-----------------+                   +--resolve--> resolved --close--> closed
    transfer: any open state -> queued (or offered to a named agent)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, Discriminator, Field, Tag, model_validator

from shared.contract import subjects as s
from shared.contract.conversation import (
    DEFAULT_SUBJECT,
    CustomerWrote,
    OutboundFailed,
    RequestMessage,
    RequestReplied,
    mail_thread,
)
from shared.contract.enums import Category, Channel, Priority
from shared.contract.models import (
    Correction,
    Event,
    OutboundMessage,
    RequestAccepted,
    RequestAssigned,
    RequestClosed,
    RequestCorrected,
    RequestEscalated,
    RequestReceived,
    RequestReopened,
    RequestResolved,
    RequestTransferred,
    SlaBreached,
    SlaWarning,
    instant,
)
from shared.nats.outbox import item as outbox_item

from .messages import AUTOMATIC, Templates, notice, progress, receipt, recipient, reply_message, supervisor_alert
from .record import MAX_ENTRY_TEXT, MAX_MESSAGES, OPEN_STATES, ConversationEntry, HistoryEntry, RequestRecord
from .rules import RoutingConfig
from .sla import (
    DeadlineName,
    SlaConfig,
    SlaPolicy,
    SlaState,
    mark,
    meet,
    parse_duration,
    pause,
    restart_next_response,
    resume,
    start_sla,
)


class InvalidTransition(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RequestNoted(Event):
    request_id: str
    actor: str
    to_customer: bool
    text: str


class RequestPending(Event):
    request_id: str
    actor: str
    reason: str | None = None


class RequestResumed(Event):
    request_id: str
    actor: str
    reason: str


class RequestDispatched(Event):
    request_id: str
    agent_id: str
    queue: str
    offer: int


# extension events (documented in docs/routing.md and the AsyncAPI document)
REQUEST_NOTED = s.REQUEST_NOTED
REQUEST_PENDING = s.REQUEST_PENDING
REQUEST_RESUMED = s.REQUEST_RESUMED
REQUEST_DISPATCHED = s.REQUEST_DISPATCHED


@dataclass(frozen=True)
class Context:
    """What transitions need besides the record: configuration and the time."""

    now: datetime
    sla: SlaConfig
    templates: Templates
    offer_timeout: timedelta
    max_offers: int
    mail_domain: str = "kefu.invalid"

    def policy(self, record: RequestRecord) -> SlaPolicy:
        return next(p for p in self.sla.policies if p.name == record.sla.policy)

    @classmethod
    def of(cls, rules: RoutingConfig, templates: Templates, now: datetime, mail_domain: str = "kefu.invalid") -> Context:
        """The context the routing service runs transitions in: its rule set's SLA and tuning."""
        return cls(now=now, sla=rules.sla, templates=templates, mail_domain=mail_domain,
                   offer_timeout=rules.duration(rules.tuning.offer_timeout), max_offers=rules.tuning.max_offers)


def _change(
    record: RequestRecord,
    ctx: Context,
    *,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
    events: Sequence[tuple[str, BaseModel]] = (),
    release: Sequence[str] = (),
    **updates: Any,
) -> RequestRecord:
    version = record.version + 1
    outbox = list(record.outbox)
    messages = list(updates.pop("messages", record.messages))
    for subject, model in events:
        kind = subject.rsplit(".", 1)[-1] if subject.startswith("kefu.events.") else subject
        if isinstance(model, OutboundMessage):
            model = _in_thread(model, record, ctx)
            messages.append(ConversationEntry(at=ctx.now, direction="out", kind=model.kind, by=actor,
                                              text=model.text[:MAX_ENTRY_TEXT], message_id=model.message_id))
        outbox.append(outbox_item(subject, model, f"{kind}:{record.request_id}:{version}"))
    history = [*record.history, HistoryEntry(at=ctx.now, actor=actor, action=action, detail=detail or {})]
    return record.model_copy(update={
        "version": version, "outbox": outbox, "history": history, "messages": messages[-MAX_MESSAGES:],
        "release": sorted(set(record.release) | {a for a in release if a}), **updates,
    })


def _in_thread(message: OutboundMessage, record: RequestRecord, ctx: Context) -> OutboundMessage:
    """A message to an e-mail customer carries its thread: the Message-ID it goes out with (naming
    the request), the customer's mail it answers, and the subject with the request's [ref]."""
    if message.channel is not Channel.email or message.thread is not None:
        return message
    thread = mail_thread(message_id=message.message_id, request_id=record.request_id, domain=ctx.mail_domain,
                         subject=record.request.subject, customer_message_ids=record.customer_message_ids(),
                         default_subject=DEFAULT_SUBJECT[record.request.language])
    return message.model_copy(update={"thread": thread})


def _require(record: RequestRecord, *states: str, action: str) -> None:
    if record.state not in states:
        raise InvalidTransition(f"cannot {action} a request that is {record.state}")


def open_record(*, request: RequestReceived, decision: RequestAssigned, skills: list[str], sla: SlaState,
                ctx: Context) -> RequestRecord:
    """A newly routed request: queued, its decision and receipt in the outbox; an emergency is
    escalated at once and its department's supervisors alerted."""
    record = RequestRecord(
        request=request, assignment=decision, department=decision.department, queue=decision.queue,
        priority=decision.priority, skills=skills, sla=sla,
        history=[HistoryEntry(at=request.received_at, actor=request.channel.value, action="received")],
    )
    record = _change(
        record, ctx, actor="system", action="assigned",
        detail={"department": decision.department, "co_departments": decision.co_departments,
                "queue": decision.queue, "category": decision.category.value,
                "priority": decision.priority.value, "emergency": decision.emergency,
                "rules": decision.matched_rules, "sla_policy": sla.policy},
        events=[(s.REQUEST_ASSIGNED, decision),
                (s.outbound_subject(request.channel), receipt(request=request, assigned=decision, templates=ctx.templates))],
    )
    if decision.emergency:
        record = escalate(record, ctx, actor="system", reason="emergency")
    return record


def offer(record: RequestRecord, ctx: Context, *, agent_id: str) -> RequestRecord:
    _require(record, "queued", action="offer")
    number = record.offers + 1
    changed = _change(
        record, ctx, actor="system", action="offered", detail={"agent_id": agent_id, "offer": number},
        events=[(REQUEST_DISPATCHED, RequestDispatched(
            request_id=record.request_id, agent_id=agent_id, queue=record.queue, offer=number, occurred_at=ctx.now))],
        state="offered", agent_id=agent_id, offers=number, offered_at=ctx.now,
    )
    # the routing decision not yet published names the agent who was available at once (a new item:
    # the items are shared with the record given, which a transition never changes)
    outbox = [item.model_copy(update={"payload": item.payload | {"agent_id": agent_id}})
              if item.subject == s.REQUEST_ASSIGNED and item.payload.get("agent_id") is None else item
              for item in changed.outbox]
    return changed.model_copy(update={"outbox": outbox})


def offer_expired(record: RequestRecord, ctx: Context, *, agent_id: str, offer_no: int,
                  supervisor_id: str | None) -> RequestRecord:
    """An offer timed out: next eligible agent, and after `max_offers` the supervisor."""
    if record.state != "offered" or record.agent_id != agent_id or record.offers != offer_no:
        return record  # accepted, transferred or re-offered meanwhile: a stale timer
    declined = sorted(set(record.declined_by) | {agent_id})
    changed = _change(record, ctx, actor="system", action="offer_expired", detail={"agent_id": agent_id},
                      release=[agent_id], state="queued", agent_id=None, offered_at=None, declined_by=declined)
    if record.offers >= ctx.max_offers:
        changed = escalate(changed, ctx, actor="system", reason="not_accepted")
        if supervisor_id is not None:
            changed = offer(changed, ctx, agent_id=supervisor_id)
    return changed


def accept(record: RequestRecord, ctx: Context, *, agent_id: str) -> RequestRecord:
    if record.state == "accepted" and record.agent_id == agent_id:
        return record  # a retried accept
    _require(record, "queued", "offered", "pending", action="accept")
    if record.state == "pending":
        record = resume_on_reply(record, ctx, reason="agent resumed")
        if record.agent_id == agent_id:
            return record
    policy = ctx.policy(record)
    sla = meet(record.sla, "first_response", ctx.now)
    sla = restart_next_response(state=sla, config=ctx.sla, policy=policy, at=ctx.now)
    return _change(
        record, ctx, actor=agent_id, action="accepted",
        events=[(s.REQUEST_ACCEPTED, RequestAccepted(request_id=record.request_id, agent_id=agent_id,
                                                     actor=agent_id, occurred_at=ctx.now))],
        release=[record.agent_id] if record.agent_id not in (None, agent_id) else [],
        state="accepted", agent_id=agent_id, offered_at=None, sla=sla,
    )


def note(record: RequestRecord, ctx: Context, *, actor: str, text: str, to_customer: bool) -> RequestRecord:
    _require(record, *OPEN_STATES, action="add a note to")
    events: list[tuple[str, BaseModel]] = [(REQUEST_NOTED, RequestNoted(
        request_id=record.request_id, actor=actor, to_customer=to_customer, text=text, occurred_at=ctx.now))]
    sla = record.sla
    if to_customer:
        events.append((s.outbound_subject(record.request.channel),
                       progress(request=record.request, text=text, version=record.version + 1, at=ctx.now)))
        if record.state == "accepted":
            sla = restart_next_response(state=sla, config=ctx.sla, policy=ctx.policy(record), at=ctx.now)
    return _change(record, ctx, actor=actor, action="note",
                   detail={"to_customer": to_customer, "text": text}, events=events, sla=sla)


def set_pending(record: RequestRecord, ctx: Context, *, actor: str, reason: str | None) -> RequestRecord:
    _require(record, "accepted", action="put on hold")
    return _change(
        record, ctx, actor=actor, action="pending", detail={"reason": reason},
        events=[(REQUEST_PENDING, RequestPending(request_id=record.request_id, actor=actor, reason=reason,
                                                 occurred_at=ctx.now))],
        state="pending", sla=pause(record.sla, config=ctx.sla, policy=ctx.policy(record), at=ctx.now),
    )


def resume_on_reply(record: RequestRecord, ctx: Context, *, reason: str, actor: str = "customer") -> RequestRecord:
    if record.state != "pending":
        return record
    return _change(
        record, ctx, actor=actor, action="resumed", detail={"reason": reason},
        events=[(REQUEST_RESUMED, RequestResumed(request_id=record.request_id, actor=actor, reason=reason,
                                                 occurred_at=ctx.now))],
        state="accepted", sla=resume(record.sla, config=ctx.sla, policy=ctx.policy(record), at=ctx.now),
    )


def reply(record: RequestRecord, ctx: Context, *, actor: str, text: str) -> RequestRecord:
    """An agent answers the customer in the thread (`kind: reply` on the request's channel). It is a
    response: it meets the first-response deadline if nothing met it before (docs/conversations.md:
    the first response is the first accept or reply, whichever comes first) and restarts the
    next-response clock of an accepted request."""
    _require(record, *OPEN_STATES, action="reply to")
    version = record.version + 1
    outbound = reply_message(request=record.request, text=text, version=version, at=ctx.now)
    sla = meet(record.sla, "first_response", ctx.now)
    if record.state == "accepted":
        sla = restart_next_response(state=sla, config=ctx.sla, policy=ctx.policy(record), at=ctx.now)
    return _change(
        record, ctx, actor=actor, action="replied", detail={"text": text[:MAX_ENTRY_TEXT]},
        events=[(s.outbound_subject(record.request.channel), outbound),
                (s.REQUEST_REPLIED, RequestReplied(request_id=record.request_id, actor=actor, agent_id=actor,
                                                   channel=record.request.channel, message_id=outbound.message_id,
                                                   text=text, occurred_at=ctx.now,
                                                   conversation=record.request.conversation))],
        sla=sla,
    )


def customer_message(record: RequestRecord, ctx: Context, *, message: RequestMessage) -> RequestRecord:
    """A customer's follow-up appended: a pending request resumes its clocks; a resolved one (or,
    when the message crossed its closing, a closed one) is reopened with `reason: customer_wrote`
    (fresh first-response and resolution deadlines, priority unchanged); whoever works it is told.
    The same message twice is appended once."""
    if any(m.source_id == message.source_id and m.direction == "in" for m in record.messages):
        return record
    entry = ConversationEntry(at=message.received_at, direction="in", kind="followup", by=message.channel.value,
                              text=message.text[:MAX_ENTRY_TEXT], source_id=message.source_id,
                              message_id=message.message_id, matched_by=message.matched_by)
    record = record.model_copy(update={"messages": [*record.messages, entry][-MAX_MESSAGES:]})
    reopened = record.state in ("resolved", "closed")
    if reopened:
        record = _reopen_by_customer(record, ctx)
    elif record.state == "pending":
        record = resume_on_reply(record, ctx, reason="customer wrote")
    return _change(
        record, ctx, actor="customer", action="customer_wrote",
        detail={"source_id": message.source_id, "matched_by": message.matched_by},
        events=[(s.REQUEST_CUSTOMER_WROTE, CustomerWrote(
            request_id=record.request_id, actor="customer", agent_id=record.held_by, department=record.department,
            queue=record.queue, state=record.state, matched_by=message.matched_by, reopened=reopened,
            source_id=message.source_id, occurred_at=ctx.now))],
    )


def _reopen_by_customer(record: RequestRecord, ctx: Context) -> RequestRecord:
    resolved = [h for h in record.history if h.action == "resolved"]
    reopened = reopen(record, ctx, reason="customer_wrote", priority=None)
    event = RequestReopened(
        request_id=record.request_id, actor="customer", reason="customer_wrote", priority=record.priority,
        department=record.department, channel=record.request.channel,
        first_resolved_at=resolved[0].at if resolved else None,
        counted_accurate=len(resolved) <= 1 and not _misrouted(record), occurred_at=ctx.now,
        conversation=record.request.conversation)
    version = reopened.version
    item = outbox_item(s.REQUEST_REOPENED, event, f"reopened:{record.request_id}:{version}")
    return reopened.model_copy(update={"outbox": [*reopened.outbox, item]})


def _misrouted(record: RequestRecord) -> bool:
    """Moved to another department than routing chose, or its judgement corrected by an agent: the
    first resolution does not count as accurate (processing accuracy, docs/metrics.md)."""
    return any((h.action == "transferred" and h.detail.get("department") != record.assignment.department)
               or h.action == "corrected" for h in record.history)


def transfer(record: RequestRecord, ctx: Context, *, actor: str, reason: str, department: str | None,
             queue: str | None, agent_id: str | None) -> RequestRecord:
    _require(record, *OPEN_STATES, action="transfer")
    new_department = department or record.department
    new_queue = queue or (f"{new_department}.{record.priority.value}" if department else record.queue)
    events: list[tuple[str, BaseModel]] = [(s.REQUEST_TRANSFERRED, RequestTransferred(
        request_id=record.request_id, actor=actor, reason=reason, department=new_department,
        queue=new_queue, agent_id=agent_id, occurred_at=ctx.now))]
    if new_department != record.department:
        # another department: routing's judgement of who leads was wrong, a correction
        events.append((s.REQUEST_CORRECTED, RequestCorrected(
            request_id=record.request_id, actor=actor, reason=reason, department=new_department, queue=new_queue,
            occurred_at=ctx.now, changes=[Correction(field="department", old=record.department, new=new_department)])))
    changed = _change(
        record, ctx, actor=actor, action="transferred",
        detail={"department": new_department, "queue": new_queue, "agent_id": agent_id, "reason": reason},
        events=events,
        release=[record.agent_id] if record.agent_id else [],
        state="queued", agent_id=None, offered_at=None, offers=0, declined_by=[],
        department=new_department, queue=new_queue,
    )
    return offer(changed, ctx, agent_id=agent_id) if agent_id else changed


def correct(record: RequestRecord, ctx: Context, *, actor: str, reason: str, category: Category | None,
            priority: Priority | None) -> RequestRecord:
    """An agent corrects routing's category or priority (the department is corrected by a transfer).

    The request's record, its `assignment` and its queue follow the new values: a request waiting
    in `<department>.<priority>` moves to the queue of its new priority. The SLA clocks do not
    move: their targets are what the customer was told at receipt (docs/routing.md#corrections).
    Nothing to change is a 409, not an empty correction."""
    _require(record, *OPEN_STATES, action="correct")
    changes: list[Correction] = []
    if category is not None and category is not record.assignment.category:
        changes.append(Correction(field="category", old=record.assignment.category.value, new=category.value))
    if priority is not None and priority is not record.priority:
        changes.append(Correction(field="priority", old=record.priority.value, new=priority.value))
    if not changes:
        raise InvalidTransition(f"the request already has category {record.assignment.category.value} and "
                                f"priority {record.priority.value}: nothing to correct")
    new_priority = priority or record.priority
    queue = record.queue
    if record.queue == f"{record.department}.{record.priority.value}":
        queue = f"{record.department}.{new_priority.value}"
    assignment = record.assignment.model_copy(update={
        "category": category or record.assignment.category, "priority": new_priority})
    return _change(
        record, ctx, actor=actor, action="corrected",
        detail={"reason": reason, "changes": [c.model_dump() for c in changes], "queue": queue},
        events=[(s.REQUEST_CORRECTED, RequestCorrected(
            request_id=record.request_id, actor=actor, reason=reason, department=record.department, queue=queue,
            changes=changes, occurred_at=ctx.now))],
        assignment=assignment, priority=new_priority, queue=queue,
    )


def escalate(record: RequestRecord, ctx: Context, *, actor: str, reason: str) -> RequestRecord:
    _require(record, *OPEN_STATES, action="escalate")
    level = record.escalation_level + 1
    return _change(
        record, ctx, actor=actor, action="escalated", detail={"reason": reason, "level": level},
        events=[
            (s.REQUEST_ESCALATED, RequestEscalated(request_id=record.request_id, actor=actor, reason=reason,
                                                   level=level, occurred_at=ctx.now)),
            (supervisor_subject(record.department),
             supervisor_alert(record=record, reason=reason, level=level, at=ctx.now)),
        ],
        escalation_level=level,
    )


def resolve(record: RequestRecord, ctx: Context, *, actor: str, resolution: str, first_contact: bool) -> RequestRecord:
    _require(record, *OPEN_STATES, action="resolve")
    sla = record.sla
    if sla.paused_since is not None:
        sla = resume(sla, config=ctx.sla, policy=ctx.policy(record), at=ctx.now)
    for name in ("first_response", "next_response", "resolution"):
        sla = meet(sla, name, ctx.now)
    # the result feedback reports to the customer on their channel carries this resolution
    result = ConversationEntry(at=ctx.now, direction="out", kind="result", by=actor, text=resolution[:MAX_ENTRY_TEXT])
    return _change(
        record, ctx, actor=actor, action="resolved", detail={"resolution": resolution, "first_contact": first_contact},
        messages=[*record.messages, result],
        events=[(s.REQUEST_RESOLVED, RequestResolved(
            request_id=record.request_id, actor=actor, resolution=resolution, first_contact=first_contact,
            channel=record.request.channel, department=record.department, priority=record.priority,
            tier=record.request.customer.tier, occurred_at=ctx.now, **reported_back(record.request),
            misrouted=_misrouted(record), mail_thread_ids=record.customer_message_ids()))],
        release=[record.agent_id] if record.agent_id else [],
        state="resolved", sla=sla, resolution=resolution, first_contact=first_contact,
    )


def reported_back(request: RequestReceived) -> dict[str, Any]:
    """What of the request `request.resolved` carries for feedback's result and survey."""
    summary = (request.subject + "\n" if request.subject else "") + request.body
    return {"language": request.language, "subject": request.subject, "summary": summary[:500],
            "customer": request.customer, "app_user_id": _text(request.channel_meta.get("app_user_id"))}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def close(record: RequestRecord, ctx: Context, *, actor: str, reason: str | None) -> RequestRecord:
    _require(record, *OPEN_STATES, "resolved", action="close")
    sla = record.sla
    for name in ("first_response", "next_response", "resolution"):
        sla = meet(sla, name, ctx.now)
    return _change(
        record, ctx, actor=actor, action="closed", detail={"reason": reason},
        events=[(s.REQUEST_CLOSED, RequestClosed(request_id=record.request_id, actor=actor, reason=reason,
                                                 occurred_at=ctx.now, conversation=record.request.conversation))],
        release=[record.agent_id] if record.agent_id and record.state in OPEN_STATES else [],
        state="closed", sla=sla,
    )


def reopen(record: RequestRecord, ctx: Context, *, reason: str, priority: Priority | None,
           actor: str = "customer") -> RequestRecord:
    """Taken up again (the customer was dissatisfied, or the problem recurred): back to its
    department's queue with a raised priority, and fresh first-response and resolution deadlines."""
    _require(record, "resolved", "closed", action="reopen")
    new_priority = priority or record.priority
    # a department's priority queue follows the new priority; a special queue (VIP, a named one) stays
    department_queue = record.queue.startswith(f"{record.department}.")
    queue = f"{record.department}.{new_priority.value}" if department_queue else record.queue
    policy = ctx.sla.select(priority=new_priority, tier=record.request.customer.tier, category=record.assignment.category)
    return _change(
        record, ctx, actor=actor, action="reopened", detail={"reason": reason, "priority": new_priority.value},
        state="queued", priority=new_priority, queue=queue, agent_id=None, offers=0, offered_at=None,
        declined_by=[], resolution=None, first_contact=None,
        sla=start_sla(config=ctx.sla, policy=policy, received_at=ctx.now),
    )


class OfferTimer(BaseModel):
    """An offer not accepted in time (`timers_for` schedules it as `offer`)."""

    timer: Literal["offer"] = "offer"
    request_id: str
    agent_id: str
    offer: int


class SlaTimer(BaseModel):
    """A deadline's warning or breach moment, scheduled as `<deadline>.<kind>`."""

    timer: str = Field(pattern=rf"^({'|'.join(get_args(DeadlineName))})\.(warning|breach)$")
    request_id: str
    deadline: DeadlineName
    kind: Literal["warning", "breach"]
    due: AwareDatetime

    @model_validator(mode="after")
    def _named_by_its_moment(self) -> SlaTimer:
        if self.timer != f"{self.deadline}.{self.kind}":
            raise ValueError(f"an SLA timer is named <deadline>.<kind>, not {self.timer!r}")
        return self


def _timer_tag(value: Any) -> str:
    timer = value.get("timer") if isinstance(value, dict) else getattr(value, "timer", None)
    return "offer" if timer == "offer" else "sla"


# What a fired routing timer carries: its handler's parameter, decoded to the one model it names
RoutingTimer = Annotated[Annotated[OfferTimer, Tag("offer")] | Annotated[SlaTimer, Tag("sla")],
                         Discriminator(_timer_tag)]


def sla_timer(record: RequestRecord, ctx: Context, *, deadline: DeadlineName, kind: str, due: datetime) -> RequestRecord:
    """A warning or breach timer fired. Stale timers (met, paused, moved, already marked) do nothing."""
    d = record.sla.deadlines.get(deadline)
    if (record.state not in OPEN_STATES or d is None or not d.open or record.sla.paused_since is not None
            or d.due != due or (d.warned if kind == "warning" else d.breached)):
        return record
    event_cls = SlaWarning if kind == "warning" else SlaBreached
    events: list[tuple[str, BaseModel]] = [(
        s.SLA_WARNING if kind == "warning" else s.SLA_BREACHED,
        event_cls(request_id=record.request_id, sla=deadline, due=d.due, priority=record.priority,
                  occurred_at=ctx.now),
    )]
    if kind == "breach" and deadline == "resolution":
        clock = ctx.sla.clock(ctx.policy(record))
        expected = clock.add(ctx.now, parse_duration(ctx.sla.breach_notice_extension, ctx.sla.workday))
        events.append((s.outbound_subject(record.request.channel),
                       notice(request=record.request, templates=ctx.templates, expected=expected, at=ctx.now)))
    return _change(
        record, ctx, actor="system", action=f"sla_{kind}", detail={"sla": deadline, "due": instant(d.due)},
        events=events, sla=mark(record.sla, deadline, warned=kind == "warning", breached=kind == "breach"),
    )


def supervisor_subject(department: str) -> str:
    return f"{s.OUTBOUND_PREFIX}.supervisor.{department}"


def timers_for(record: RequestRecord, ctx: Context) -> dict[str, tuple[datetime, OfferTimer | SlaTimer]]:
    """The timers a record needs now: name -> (fire at, what it carries). Everything else is cancelled."""
    timers: dict[str, tuple[datetime, OfferTimer | SlaTimer]] = {}
    if record.state not in OPEN_STATES:
        return timers
    if record.sla.paused_since is None:
        # only the next SLA moment is scheduled: when it fires, the record changes and the one after
        # it is scheduled then (one schedule per request instead of one per deadline and kind)
        pending: list[tuple[datetime, str, DeadlineName, Literal["warning", "breach"], datetime]] = []
        for name, d in record.sla.deadlines.items():
            if not d.open:
                continue
            if not d.warned:
                pending.append((d.warn_at, f"{name}.warning", name, "warning", d.due))
            if not d.breached:
                pending.append((d.due, f"{name}.breach", name, "breach", d.due))
        if pending:
            at, timer, deadline, kind, due = min(pending, key=lambda p: (p[0], p[1]))
            timers[timer] = (at, SlaTimer(timer=timer, request_id=record.request_id, deadline=deadline, kind=kind,
                                          due=due))
    # offers to agents time out; the offer to a supervisor after the last one does not
    if (record.state == "offered" and record.offered_at is not None and record.agent_id is not None
            and record.offers <= ctx.max_offers):
        timers["offer"] = (record.offered_at + ctx.offer_timeout,
                           OfferTimer(request_id=record.request_id, agent_id=record.agent_id, offer=record.offers))
    return timers


# -- a message that did not arrive ---------------------------------------------------------------
# Where a message goes instead when its channel refuses it for now (WeChat lets an account write
# only within 48 hours of the customer's last message): the customer's other proven contacts, in
# this order. A message that was itself such a second try is not tried a third time.
FALLBACK = (("phone", Channel.sms), ("email", Channel.email), ("app_user_id", Channel.app))
RETRY_ELSEWHERE = ("outside_window",)


def undelivered(record: RequestRecord, ctx: Context, *, failed: OutboundFailed) -> RequestRecord:
    """A message to the customer did not arrive (outbound.failed). The history says so, for the
    agent; when the channel refused it only for now (`outside_window`) and the customer has
    another proven contact, the same words go there, once. The same failure twice is one."""
    if any(h.action == "undelivered" and h.detail.get("message_id") == failed.message_id for h in record.history):
        return record
    sent = next((m for m in record.messages if m.direction == "out" and m.message_id == failed.message_id), None)
    to = recipient(record.request)
    events: list[tuple[str, BaseModel]] = []
    detail: dict[str, Any] = {"message_id": failed.message_id, "channel": failed.channel.value, "reason": failed.reason}
    if sent is not None and failed.reason in RETRY_ELSEWHERE and ".via." not in failed.message_id:
        found = next(((key, channel) for key, channel in FALLBACK if channel is not failed.channel and key in to), None)
        if found is not None:
            key, channel = found
            again = OutboundMessage(
                message_id=f"{failed.message_id}.via.{channel.value}", request_id=record.request_id, channel=channel,
                kind=sent.kind, to={key: to[key]},  # an "out" entry's kind is a message's
                language=record.request.language, text=sent.text, occurred_at=ctx.now, automatic=sent.kind in AUTOMATIC)
            events.append((s.outbound_subject(channel), again))
            detail["sent_again_on"] = channel.value
    return _change(record, ctx, actor="system", action="undelivered", detail=detail, events=events)
