"""NATS edge of feedback: the request events, survey answers, and its timers."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsRouter

from shared.contract import models as m
from shared.contract import subjects as s
from shared.contract.models import SurveyReplied
from shared.nats.consume import durable_subscriber
from shared.nats.publish import Publishes, audit_of, to_customers
from shared.nats.timers import fire_filter
from shared.runtime import Late, Runtime

from .domain.survey import FeedbackTimer
from .service import TIMER_SERVICE, Feedback

# What feedback publishes to kefu's contract streams (its AsyncAPI publish side).
PUBLISHES = [
    Publishes(s.SURVEY_SENT, m.SurveySent, "A satisfaction survey was sent; carries its page's address."),
    Publishes(s.SURVEY_ANSWERED, m.SurveyAnswered, "The customer rated the service 1-5."),
    Publishes(s.SURVEY_EXPIRED, m.SurveyExpired, "A survey expired unanswered."),
    Publishes(s.SURVEY_REPLIED, m.SurveyReplied, "A customer's answer as given, before it is recorded (kefu extension)."),
    Publishes(s.FOLLOWUP_SCHEDULED, m.FollowupScheduled, "A revisit is due."),
    Publishes(s.FOLLOWUP_COMPLETED, m.FollowupCompleted, "A revisit was done."),
    Publishes(s.REQUEST_REOPENED, m.RequestReopened, "Taken up again (dissatisfied, recurred)."),
    *to_customers(),
    audit_of("survey.read", "a request's surveys (feedback)"),
]


def build_router(runtime: Runtime, feedback: Late[Feedback], *, batch_size: int) -> NatsRouter:
    router = NatsRouter()

    def durable(subject: str | list[str], stream: str, name: str, description: str) -> Any:
        return durable_subscriber(router, runtime.consuming, subject=subject, stream=stream, durable=name,
                                  batch_size=batch_size, description=description)

    # only what feedback uses: the server filters out the rest (a consumer created by an older
    # version keeps its wider filter, and the handler ignores what it does not use). request.resolved
    # carries the customer: feedback keeps nothing of a request before it is resolved.
    @durable(s.REQUEST_RESOLVED, s.STREAM_EVENTS, s.CONSUMER_FEEDBACK,
             "On resolution: the result and the survey through the customer's channel, the revisit.")
    async def on_request_event(body: bytes) -> None:
        raw = runtime.current_message()
        await feedback().on_request_event(raw.subject, body)

    @durable(s.SURVEY_REPLIED, s.STREAM_EVENTS, s.CONSUMER_FEEDBACK_ANSWERS,
             "Records survey answers from the survey page and from replies on the customer's channel.")
    async def on_reply(reply: SurveyReplied) -> None:
        await feedback().on_reply(reply)

    @durable(fire_filter(TIMER_SERVICE), s.timers_stream(TIMER_SERVICE), s.CONSUMER_FEEDBACK_TIMERS,
             "Delayed invitations, reminders, expiry, revisits and the monthly sample.")
    async def on_timer(timer: FeedbackTimer) -> None:
        await feedback().on_timer(timer)

    return router
