"""Routing's orchestration: every change to a request goes through `apply` (pure transition,
revision-checked write with its events in the record's outbox), then `flush` (publish the outbox
with Nats-Msg-Ids, bring the projections and timers in line with the record, clear the outbox).
A crash between any two steps leaves an outbox marker; the reconcile loop finishes the flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats.js.errors
from prometheus_client import CollectorRegistry, Counter

from shared.contract.conversation import OutboundFailed, RequestMessage
from shared.contract.enums import Category, Priority
from shared.contract.models import RequestReceived, RequestReopened
from shared.nats import kv, outbox, timers
from shared.nats.publish import Publisher, together

from .domain.dispatch import Waiting, plan, supervisor_for
from .domain.lifecycle import (
    Context,
    InvalidTransition,
    OfferTimer,
    SlaTimer,
    customer_message,
    offer,
    offer_expired,
    reopen,
    resume_on_reply,
    sla_timer,
    timers_for,
    undelivered,
)
from .domain.messages import Templates
from .domain.record import RequestRecord
from .domain.route import route_request
from .domain.rules import RoutingConfig
from .store import Conflict, RoutingStore

log = logging.getLogger("kefu.routing")
TIMER_SERVICE = "routing"


class NotFound(Exception):
    pass


class NotYetRouted(Exception):
    """A follow-up for a request routing has not stored yet: retried (delayed redelivery)."""


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry, departments: list[str]) -> None:
        self.routed = Counter(
            "kefu_routing_decisions_total",
            "Requests routing judged and routed in this process, by category, priority and lead department.",
            ["category", "priority", "department"],
            registry=registry,
        )
        self.offers = Counter("kefu_routing_offers_total", "Requests offered to agents in this process.",
                              registry=registry)
        self.timers = Counter("kefu_routing_timers_total", "Timers that fired, by kind.", ["kind"], registry=registry)
        for c in Category:
            for p in Priority:
                for d in departments:
                    self.routed.labels(c.value, p.value, d)
        for kind in ("warning", "breach", "offer"):
            self.timers.labels(kind)


Transition = Callable[[RequestRecord, Context], RequestRecord]


@dataclass(frozen=True)
class Stored:
    """A record as just written: its revision, and whether an outbox marker was written with it."""

    record: RequestRecord
    revision: int
    marked: bool


@dataclass
class Routing:
    config: RoutingConfig
    templates: Templates
    store: RoutingStore
    publisher: Publisher
    metrics: RoutingMetrics
    _dispatching: asyncio.Lock = field(default_factory=asyncio.Lock)
    _suspects: dict[tuple[str, str], float] = field(default_factory=dict)
    mail_domain: str = "kefu.invalid"
    reconcile_every: float = 30.0
    hold_grace: float = 15.0  # an offer in flight takes milliseconds; a hold this old on a queued request is stale

    def context(self) -> Context:
        return Context.of(self.config, self.templates, datetime.now(UTC), self.mail_domain)

    # -- a received request --------------------------------------------------------------------
    async def on_received(self, request: RequestReceived) -> None:
        customer_id = request.customer.customer_id
        if customer_id:
            for other in self.store.pending_for(customer_id):
                if other != request.request_id:  # the customer replied: their pending requests resume
                    with contextlib.suppress(NotFound, InvalidTransition):
                        await self.apply(other, lambda r, c: resume_on_reply(
                            r, c, reason=f"customer wrote again ({request.request_id})"))

        # event -> transition (route_request) -> create -> flush -> dispatch. A delivery of a request
        # already routed (redelivery, another replica) fails the create and only flushes: judging
        # again costs CPU, reading first would cost a round trip every time.
        record = route_request(request, rules=self.config, ctx=self.context())
        decision = record.assignment
        # No outbox marker on this path: until the flush below has published everything, the message
        # is not acknowledged, and its redelivery flushes again. Only a flush that fails leaves a
        # marker, for the reconcile loop (in case the message runs out of deliveries).
        revision = await self.store.create(record)
        stored = Stored(record, revision, marked=False) if revision else None  # None: flush reads it
        if revision:
            self.metrics.routed.labels(decision.category.value, decision.priority.value, decision.department).inc()
            # offer at once when someone is free, so the routing decision can name the agent
            if await self._offer_first(record):
                stored = None  # changed (and marked) by the offer since it was created
        try:
            await self.flush(request.request_id, stored)
        except Exception:
            with contextlib.suppress(Exception):
                await self.store.mark_outbox_if_absent(request.request_id)
            raise
        await self.dispatch()

    async def _offer_first(self, record: RequestRecord) -> bool:
        """True when an offer was tried (its change wrote an outbox marker)."""
        async with self._dispatching:
            offers = plan([self.waiting_of(record)], dict(self.store.agents.items))
            for waiting, agent in offers:
                await self._try_offer(waiting, agent.agent_id, flush=False)
            return bool(offers)

    async def on_reopened(self, event: RequestReopened) -> None:
        try:
            await self.apply(event.request_id, lambda r, c: reopen(
                r, c, reason=event.reason or "reopened", priority=event.priority, actor=event.actor or "customer"))
        except (NotFound, InvalidTransition) as exc:
            log.info("reopen ignored", extra={"request_id": event.request_id, "why": type(exc).__name__})
            return
        await self.dispatch()

    async def on_message(self, message: RequestMessage) -> None:
        """A customer's follow-up. The request is routed from request.received, which intake published
        first; a follow-up that overtakes it (another consumer, a redelivery) is retried later."""
        try:
            await self.apply(message.request_id, lambda r, c: customer_message(r, c, message=message))
        except NotFound:
            raise NotYetRouted(message.request_id) from None
        await self.dispatch()

    async def on_undelivered(self, failed: OutboundFailed) -> None:
        """A message to a customer that did not arrive (a bounce, a platform's refusal)."""
        if failed.request_id is None:
            return
        try:
            await self.apply(failed.request_id, lambda r, c: undelivered(r, c, failed=failed))
        except NotFound:  # a request no longer kept: nothing to tell anyone
            log.info("undelivered message of an unknown request", extra={"request_id": failed.request_id})

    # -- every change ---------------------------------------------------------------------------
    async def apply(self, request_id: str, change: Transition, *, flush: bool = True) -> RequestRecord:
        """A change to an existing request: the pure transition applied with a revision check
        (`shared.nats.kv.apply`), an outbox marker written before each write, then the flush."""
        def transition(record: RequestRecord | None) -> RequestRecord:
            if record is None:
                raise NotFound(request_id)
            return change(record, self.context())

        async def mark(changed: RequestRecord) -> None:
            await self.store.mark_outbox(request_id, changed.version)

        applied = await kv.apply(self.store.records, request_id, transition, before_write=mark)
        assert applied.value is not None
        if flush and applied.written:
            try:
                await self.flush(request_id, Stored(applied.value, applied.revision, marked=True))
            except Exception:  # stored: the reconcile loop publishes it
                log.warning("flush failed; will retry", extra={"request_id": request_id}, exc_info=True)
        return applied.value

    async def flush(self, request_id: str, stored: Stored | None = None) -> None:
        """Publish the outbox, sync projections and timers, then clear what was done.
        `stored`: the record as the caller just wrote it (saves reading it back); without it the
        record is read and any outbox marker is cleared."""
        found = (stored.record, stored.revision) if stored else await self.store.get(request_id)
        if found is None:
            return
        record, _ = found
        desired = timers_for(record, self.context())
        scheduled = {name: at.isoformat() for name, (at, _) in desired.items()}
        # the events, the projections and the timers do not depend on each other: all in flight at
        # once (each is idempotent, and the record keeps its outbox until all three are done)
        await together(outbox.publish(self.publisher, record.outbox), self.sync(record),
                       self._sync_timers(record, desired))
        published = {i.msg_id for i in record.outbox}
        released = set(record.release)

        def clean(current: RequestRecord | None) -> RequestRecord | None:
            if current is None:
                return None
            cleaned = current.model_copy(update={
                "outbox": [i for i in current.outbox if i.msg_id not in published],
                "release": [a for a in current.release if a not in released],
                "timers": scheduled if current.version == record.version else current.timers,
            })
            return current if cleaned == current else cleaned

        # the first try assumes nothing changed since it was read or written
        await kv.apply(self.store.records, request_id, clean, known=found)
        if stored is None or stored.marked:
            await self.store.unmark_outbox(request_id, record.version)

    async def _sync_timers(self, record: RequestRecord, desired: dict[str, tuple[datetime, OfferTimer | SlaTimer]]) -> None:
        request_id = record.request_id
        for name, (at, timer) in desired.items():
            if record.timers.get(name) != at.isoformat():
                await timers.schedule(self.publisher, service=TIMER_SERVICE, key=request_id, name=name, at=at,
                                      body=timer)
        for name in set(record.timers) - set(desired):
            await timers.cancel(self.publisher, service=TIMER_SERVICE, key=request_id, name=name)

    async def sync(self, record: RequestRecord) -> None:
        """Bring waiting queue, agents' holds and pending index in line with the record."""
        if record.state == "queued":
            await self.store.enqueue(self.waiting_of(record))
        else:
            await self.store.dequeue(record.request_id)
        if record.held_by:
            await self.store.hold(record.held_by, record.request_id, record.queue, ignore_capacity=True)
        for agent_id in record.release:
            if agent_id != record.held_by:
                await self.store.release(agent_id, record.request_id)
        customer_id = record.request.customer.customer_id
        if customer_id and (record.state == "pending" or any(h.action == "pending" for h in record.history)):
            await self.store.set_pending(customer_id, record.request_id, record.state == "pending")

    def waiting_of(self, record: RequestRecord) -> Waiting:
        r = record.request
        return Waiting(
            request_id=record.request_id, queue=record.queue, department=record.department,
            priority=record.priority, emergency=record.assignment.emergency, received_at=r.received_at,
            language=r.language, skills=record.skills, tier=r.customer.tier,
            account_manager=r.customer.account_manager, declined_by=record.declined_by,
        )

    # -- timers ---------------------------------------------------------------------------------
    async def on_timer(self, timer: OfferTimer | SlaTimer) -> None:
        request_id = timer.request_id
        try:
            if isinstance(timer, OfferTimer):
                self.metrics.timers.labels("offer").inc()
                record = (await self.store.get(request_id) or (None, 0))[0]
                if record is None:
                    return
                supervisor = supervisor_for(record.department, dict(self.store.agents.items))
                if supervisor is not None and record.offers >= self.config.tuning.max_offers:
                    await self.store.hold(supervisor.agent_id, request_id, record.queue, ignore_capacity=True)
                await self.apply(request_id, lambda r, c: offer_expired(
                    r, c, agent_id=timer.agent_id, offer_no=timer.offer,
                    supervisor_id=supervisor.agent_id if supervisor else None))
                await self.dispatch()
            else:
                self.metrics.timers.labels(timer.kind).inc()
                await self.apply(request_id, lambda r, c: sla_timer(
                    r, c, deadline=timer.deadline, kind=timer.kind, due=timer.due))
        except NotFound:
            log.warning("timer for an unknown request", extra={"request_id": request_id, "timer": timer.timer})

    # -- dispatch -------------------------------------------------------------------------------
    async def dispatch(self) -> int:
        """Offer waiting requests to agents with room, in service order. Safe with replicas: the
        agent's hold and the request's offer are both revision-checked writes."""
        made = 0
        agents = dict(self.store.agents.items)
        with_room = [a for a in agents.values() if a.has_room]
        if not with_room:
            return 0  # nobody can take anything
        async with self._dispatching:
            # only what the agents with room could take (their queues, their VIP customers): the
            # cost follows the queues being served, not the whole backlog
            offers = plan(self.store.waiting_index.candidates(with_room), agents)
            for waiting, agent in offers:
                made += await self._try_offer(waiting, agent.agent_id)
        return made

    async def _try_offer(self, waiting: Waiting, agent_id: str, *, flush: bool = True) -> int:
        if await self.store.hold(agent_id, waiting.request_id, waiting.queue) != "added":
            return 0  # no room any more, or another replica is offering it to this agent right now
        try:
            record = await self.apply(waiting.request_id, lambda r, c: offer(r, c, agent_id=agent_id), flush=flush)
        except (InvalidTransition, NotFound):
            record = None
        if record is None or record.held_by != agent_id:
            await self.store.release(agent_id, waiting.request_id)
            if record is None or record.state != "queued":
                await self.store.dequeue(waiting.request_id)
            return 0
        self.metrics.offers.inc()
        return 1

    # -- background ----------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Finish interrupted flushes; drop agents' holds on requests they no longer hold."""
        for request_id in await self.store.outbox_ids():
            try:
                await self.flush(request_id)
            except Exception:
                log.warning("reconcile flush failed", extra={"request_id": request_id}, exc_info=True)
        now = asyncio.get_running_loop().time()
        suspects: dict[tuple[str, str], float] = {}
        for agent in list(self.store.agents.items.values()):
            for request_id in agent.active:
                found = await self.store.get(request_id)
                if found is not None and found[0].held_by == agent.agent_id:
                    continue
                pair = (agent.agent_id, request_id)
                if found is None or found[0].state != "queued":
                    await self.store.release(agent.agent_id, request_id)  # resolved, moved, or someone else's
                elif now - self._suspects.get(pair, now) > self.hold_grace:
                    await self.store.release(agent.agent_id, request_id)  # an offer that never completed
                else:
                    suspects[pair] = self._suspects.get(pair, now)  # an offer may be in flight
        self._suspects = suspects

    async def run_background(self, stop: asyncio.Event) -> None:
        interval = self.config.duration(self.config.tuning.dispatch_interval).total_seconds()
        wake = asyncio.Event()
        self.store.agents.changed = wake.set
        self.store.waiting.changed = wake.set
        last_reconcile = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)
            wake.clear()
            if stop.is_set():
                break
            try:
                await self.dispatch()
                now = asyncio.get_running_loop().time()
                if now - last_reconcile >= self.reconcile_every:
                    last_reconcile = now
                    await self.reconcile()
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, Conflict):
                log.warning("background pass failed", exc_info=True)
