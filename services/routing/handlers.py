"""NATS edge of routing: received requests, reopened requests and fired timers, each a durable consumer."""

from __future__ import annotations

from faststream.nats import NatsRouter

from shared.contract import conversation as cv
from shared.contract import models as m
from shared.contract import subjects as s
from shared.contract.models import RequestReceived, RequestReopened
from shared.nats.consume import durable_subscriber
from shared.nats.publish import Publishes, audit_of, to_customers
from shared.nats.timers import fire_filter
from shared.runtime import Late, Runtime

from .domain import lifecycle as lc
from .domain.lifecycle import RoutingTimer
from .service import TIMER_SERVICE, Routing

# What routing publishes to kefu's contract streams (its AsyncAPI publish side).
PUBLISHES = [
    Publishes(s.REQUEST_ASSIGNED, m.RequestAssigned, "Category, priority, emergency, departments, queue and due times."),
    Publishes(s.REQUEST_ACCEPTED, m.RequestAccepted, "An agent accepted the request."),
    Publishes(s.REQUEST_TRANSFERRED, m.RequestTransferred, "Moved to another department, queue or agent."),
    Publishes(s.REQUEST_CORRECTED, m.RequestCorrected, "An agent corrected the category or priority, or moved the "
              "request to another department: old and new values and the reason (kefu extension)."),
    Publishes(s.REQUEST_ESCALATED, m.RequestEscalated, "Escalated (emergency, timeout, supervisor)."),
    Publishes(s.REQUEST_RESOLVED, m.RequestResolved, "Resolved, with the resolution."),
    Publishes(s.REQUEST_CLOSED, m.RequestClosed, "Closed."),
    Publishes(s.SLA_WARNING, m.SlaWarning, "A deadline is near."),
    Publishes(s.SLA_BREACHED, m.SlaBreached, "A deadline passed."),
    Publishes(lc.REQUEST_DISPATCHED, lc.RequestDispatched, "Offered to an agent (kefu extension)."),
    Publishes(lc.REQUEST_NOTED, lc.RequestNoted, "A note; to_customer notes also go out as progress (kefu extension)."),
    Publishes(lc.REQUEST_PENDING, lc.RequestPending, "Waiting on the customer; SLA clocks paused (kefu extension)."),
    Publishes(lc.REQUEST_RESUMED, lc.RequestResumed, "The customer replied; SLA clocks run again (kefu extension)."),
    Publishes(s.REQUEST_REPLIED, cv.RequestReplied, "An agent answered the customer in the thread."),
    Publishes(s.REQUEST_REOPENED, m.RequestReopened, "A resolved request the customer wrote to again (customer_wrote)."),
    Publishes(s.REQUEST_CUSTOMER_WROTE, cv.CustomerWrote,
              "The customer wrote again: for the agent holding the request (kefu extension)."),
    *to_customers(),
    audit_of("request.read", "a request's record (routing)"),
    audit_of("agent.work", "an agent's work list: the subjects of the requests they hold (routing)"),
    audit_of("floor.read", "a supervisor's floor: the queues and held requests of their departments (routing)"),
]


def build_router(runtime: Runtime, routing: Late[Routing], *, batch_size: int, workers: int = 1) -> NatsRouter:
    router = NatsRouter()

    @durable_subscriber(router, runtime.consuming, subject=s.REQUEST_RECEIVED, stream=s.STREAM_EVENTS,
                        durable=s.CONSUMER_ROUTING, batch_size=batch_size, workers=workers,
                        description="Judges, routes and sets SLA deadlines for every received request; "
                        "offers it to an agent.")
    async def on_received(request: RequestReceived) -> None:
        await routing().on_received(request)

    @durable_subscriber(router, runtime.consuming, subject=fire_filter(TIMER_SERVICE), stream=s.timers_stream(TIMER_SERVICE),
                        durable=s.CONSUMER_ROUTING_TIMERS, batch_size=batch_size,
                        description="SLA warnings and breaches, and offers not accepted in time "
                        "(server-side schedules).")
    async def on_timer(timer: RoutingTimer) -> None:
        await routing().on_timer(timer)

    @durable_subscriber(router, runtime.consuming, subject=s.REQUEST_REOPENED, stream=s.STREAM_EVENTS,
                        durable=s.CONSUMER_ROUTING_REOPENED, batch_size=batch_size,
                        description="Requests reopened by feedback go back to their department's queue.")
    async def on_reopened(event: RequestReopened) -> None:
        await routing().on_reopened(event)

    @durable_subscriber(router, runtime.consuming, subject=s.REQUEST_MESSAGE, stream=s.STREAM_EVENTS,
                        durable=s.CONSUMER_ROUTING_MESSAGES, batch_size=batch_size,
                        description="Customers' follow-ups: appended to the request, which resumes or reopens.")
    async def on_message(message: cv.RequestMessage) -> None:
        await routing().on_message(message)

    @durable_subscriber(router, runtime.consuming, subject=s.OUTBOUND_FAILED, stream=s.STREAM_EVENTS,
                        durable=s.CONSUMER_ROUTING_UNDELIVERED, batch_size=batch_size,
                        description="Messages that did not arrive: in the request's history, and sent again on the "
                        "customer's other channel when WeChat's 48-hour window closed.")
    async def on_undelivered(failed: cv.OutboundFailed) -> None:
        await routing().on_undelivered(failed)

    return router
