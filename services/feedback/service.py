"""Feedback's orchestration: results and surveys on resolution, answers, reopening, revisits.

Every handler can run again for the same input: ids are derived from what caused them (the
resolved event, the month of a sample), writes are create-once or revision-checked, and every
publish carries a Nats-Msg-Id derived from the same ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter

from shared.calendar import BusinessHoursConfig
from shared.contract import subjects as s
from shared.contract.enums import Language
from shared.contract.models import (
    FollowupCompleted,
    FollowupScheduled,
    RequestReopened,
    RequestResolved,
    SupervisorAlert,
    SurveyAnswered,
    SurveyExpired,
    SurveyReplied,
    SurveySent,
)
from shared.nats import outbox, timers
from shared.nats.kv import apply
from shared.nats.publish import Publisher
from shared.privacy import contact_key

from .domain import messages as m
from .domain.followup import Followup, Outcome, followup_id_for, monthly_sample
from .domain.rules import FeedbackConfig
from .domain.survey import (
    AnswerRefused,
    FeedbackTimer,
    MonthlyTimer,
    RequestView,
    RevisitTimer,
    Survey,
    SurveyTimer,
    answer,
    dissatisfied,
    raised,
    reminder_time,
    reopened_context,
    resolved_again,
    survey_id_for,
    survey_page,
    survey_url,
    view_of,
)
from .store import FeedbackStore

log = logging.getLogger("kefu.feedback")
TIMER_SERVICE = "feedback"


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.surveys = Counter("kefu_feedback_surveys_total", "Surveys sent by this process, by channel.",
                               ["channel"], registry=registry)
        self.answers = Counter("kefu_feedback_answers_total", "Answers recorded by this process, by how given.",
                               ["via"], registry=registry)
        for via in ("page", "reply"):
            self.answers.labels(via)


class FollowupConflict(Exception):
    pass


@dataclass
class Feedback:
    config: FeedbackConfig
    hours: BusinessHoursConfig
    store: FeedbackStore
    publisher: Publisher
    base_url: str
    secret: str
    metrics: FeedbackMetrics
    mail_domain: str = "kefu.invalid"

    def url(self, survey_id: str) -> str:
        return survey_url(self.base_url, self.secret, survey_id)

    # -- the request's story -------------------------------------------------------------------
    async def on_request_event(self, subject: str, body: bytes) -> None:
        # a consumer created before 2026-12 still filters request.received too: nothing to do there
        if subject == s.REQUEST_RESOLVED:  # carries the customer, department, priority and tier as they are then
            await self._resolved(RequestResolved.model_validate_json(body))

    async def _view_on_resolution(self, event: RequestResolved) -> RequestView | None:
        """The request's view with this resolution recorded: made from the event the first time,
        changed on a later resolution (after a reopen) or where a view exists already."""
        def resolve(view: RequestView | None) -> RequestView | None:
            return view_of(event) if view is None else resolved_again(view, event)

        return (await apply(self.store.views, event.request_id, resolve)).value

    async def _resolved(self, event: RequestResolved) -> None:
        now = datetime.now(UTC)
        survey_id = survey_id_for(f"resolved:{event.event_id}")
        view = await self._view_on_resolution(event)
        if view is None:
            log.warning("resolved request without its customer", extra={"request_id": event.request_id})
            return
        items = [outbox.item(s.outbound_subject(view.channel), m.message(self.mail_domain,
            view, kind="result", message_id=f"result.{survey_id}", text=m.result_text(view, self.config.messages),
            at=now), msg_id=f"result:{survey_id}")]
        await outbox.publish(self.publisher, items)
        if view.channel in self.config.survey.channels:
            await self._open_survey(view, survey_id, sent_at=event.occurred_at, sample=False)
        await self._schedule_revisit(view, event.occurred_at)

    async def _open_survey(self, view: RequestView, survey_id: str, *, sent_at: datetime, sample: bool) -> None:
        cfg = self.config.survey
        expires_at = sent_at + self.config.duration(cfg.expires_after)
        reminder = self.config.duration(cfg.reminder_after) if cfg.reminder_after else None
        keys = [contact_key(kind, view.customer.contacts[field])
                for kind, field in (("phone", "phone"), ("wechat", "wechat_openid")) if field in view.customer.contacts]
        survey = Survey(
            survey_id=survey_id, request_id=view.request_id, customer_id=view.customer.customer_id,
            channel=view.channel, language=view.language, sent_at=sent_at, expires_at=expires_at,
            reminder_at=reminder_time(sent_at, reminder, expires_at), reply_keys=keys, sample=sample,
        )
        await self.store.surveys.create(survey_id, survey)
        # marked on the view after the survey exists (a redelivery after a crash in between marks it)
        await self.store.views.change(view.request_id, lambda v: v.model_copy(update={
            "surveyed": True, "survey_ids": v.survey_ids if survey_id in v.survey_ids else [*v.survey_ids, survey_id]}))
        delay = self.config.duration(cfg.invite_delay)
        if delay.total_seconds() > 0:
            await timers.schedule(self.publisher, service=TIMER_SERVICE, key=survey_id, name="invite",
                                  at=sent_at + delay, body=SurveyTimer(timer="invite", survey_id=survey_id))
        else:
            await self.invite(survey_id)

    async def _open(self, survey_id: str) -> tuple[Survey, RequestView] | None:
        """An open survey and its request, or None (answered, expired, unknown)."""
        found = await self.store.surveys.get(survey_id)
        if found is None or found[0].status != "open":
            return None
        view = await self.store.views.get(found[0].request_id)
        return (found[0], view[0]) if view is not None else None

    async def invite(self, survey_id: str) -> None:
        opened = await self._open(survey_id)
        if opened is None:
            return
        survey, view = opened
        url = self.url(survey_id)
        now = datetime.now(UTC)
        # replies are linked to the survey before the invitation goes out: a reply to it always
        # finds its survey (the other way round, a fast reply was taken for a new request)
        await self.store.link_replies(survey.reply_keys, survey_id)
        await outbox.publish(self.publisher, [
            outbox.item(s.outbound_subject(view.channel), m.message(self.mail_domain,
                view, kind="survey", message_id=f"survey.{survey_id}",
                text=m.survey_text(view.language, self.config.messages, url=url), at=now), msg_id=f"survey:{survey_id}"),
            outbox.item(s.SURVEY_SENT, SurveySent(survey_id=survey_id, request_id=survey.request_id,
                                                  channel=survey.channel,
                                                  url=survey_page(self.base_url, survey_id), occurred_at=now),
                        msg_id=f"sent:{survey_id}"),
        ])
        await timers.schedule(self.publisher, service=TIMER_SERVICE, key=survey_id, name="expire",
                              at=survey.expires_at, body=SurveyTimer(timer="expire", survey_id=survey_id))
        if survey.reminder_at is not None:
            await timers.schedule(self.publisher, service=TIMER_SERVICE, key=survey_id, name="reminder",
                                  at=survey.reminder_at, body=SurveyTimer(timer="reminder", survey_id=survey_id))
        self.metrics.surveys.labels(view.channel.value).inc()

    # -- answers ---------------------------------------------------------------------------------
    def reasons(self, language: Language) -> list[str]:
        return self.config.survey.low_rating_reasons[language]

    async def check_answer(self, survey: Survey, rating: int, reasons: list[str]) -> None:
        """Refuse an answer the survey cannot take (before it is published for recording)."""
        answer(survey, rating=rating, comment=None, reasons=reasons, allowed_reasons=self.reasons(survey.language),
               now=datetime.now(UTC), via="page")

    async def submit(self, reply: SurveyReplied) -> bool:
        """Publish an answer from the page for recording. False when one was already given: the
        stream's duplicate window on `answer:<survey_id>` lets only the first through."""
        ack = await self.publisher.model(s.SURVEY_REPLIED, reply, msg_id=f"answer:{reply.survey_id}")
        return not ack.duplicate

    async def on_reply(self, reply: SurveyReplied) -> None:
        """Record an answer, whether from the page or a reply on the channel. The first one wins."""
        now = datetime.now(UTC)

        def record(survey: Survey) -> Survey | None:
            try:
                return answer(survey, rating=reply.rating, comment=reply.comment, reasons=reply.reasons,
                              allowed_reasons=self.reasons(survey.language), now=now, via=reply.via)
            except AnswerRefused:
                return None

        survey = await self.store.surveys.change(reply.survey_id, record)
        if survey is None or survey.status != "answered" or survey.answered_via != reply.via \
                or survey.rating != reply.rating:
            log.info("answer not recorded", extra={"survey_id": reply.survey_id, "via": reply.via})
            return
        self.metrics.answers.labels(reply.via).inc()
        items = [outbox.item(s.SURVEY_ANSWERED, SurveyAnswered(
            survey_id=survey.survey_id, request_id=survey.request_id, channel=survey.channel, rating=survey.rating,
            comment=survey.comment, reasons=survey.reasons, via=reply.via, occurred_at=survey.answered_at or now),
            msg_id=f"answered:{survey.survey_id}")]
        if dissatisfied(survey.rating, self.config.survey.reopen_at_or_below):
            items += await self._reopen(survey.request_id, reason=f"dissatisfied (rating {survey.rating})",
                                        key=survey.survey_id, now=now)
        # the survey stops taking replies before its answer is told: whoever sees survey.answered can
        # count on the customer's next "5" being an ordinary message (a redelivery after a crash here
        # finds the survey answered and publishes the same events again)
        await self.store.unlink_replies(survey.reply_keys, survey.survey_id)
        await outbox.publish(self.publisher, items)
        await timers.cancel(self.publisher, service=TIMER_SERVICE, key=survey.survey_id, name="reminder")

    async def _reopen(self, request_id: str, *, reason: str, key: str, now: datetime) -> list[outbox.OutboxItem]:
        view = (await self.store.views.get(request_id) or (None, 0))[0]
        priority = raised(view.priority) if view else None
        items = [outbox.item(s.REQUEST_REOPENED, RequestReopened(
            request_id=request_id, actor="customer", reason=reason, priority=priority, occurred_at=now,
            **(reopened_context(view) if view else {})), msg_id=f"reopened:{key}")]
        if view is not None and view.department:
            items.append(outbox.item(f"{s.OUTBOUND_PREFIX}.supervisor.{view.department}", SupervisorAlert(
                alert_id=f"alert.reopened.{key}", request_id=request_id, department=view.department,
                priority=priority, reason=f"reopened: {reason}", occurred_at=now), msg_id=f"alert:reopened:{key}"))
        return items

    # -- timers ----------------------------------------------------------------------------------
    async def on_timer(self, timer: FeedbackTimer) -> None:
        if isinstance(timer, SurveyTimer):
            step = {"invite": self.invite, "reminder": self._remind, "expire": self._expire}[timer.timer]
            await step(timer.survey_id)
        elif isinstance(timer, RevisitTimer):
            await self._revisit_task(timer.followup_id)
        else:
            from .domain.followup import previous_month

            await self.sample_month(previous_month(datetime.now(self.hours.tz).date()))

    async def _remind(self, survey_id: str) -> None:
        opened = await self._open(survey_id)
        if opened is None:
            return
        _, view = opened
        await outbox.publish(self.publisher, [outbox.item(s.outbound_subject(view.channel), m.message(self.mail_domain,
            view, kind="survey", message_id=f"reminder.{survey_id}",
            text=m.survey_text(view.language, self.config.messages, url=self.url(survey_id), reminder=True),
            at=datetime.now(UTC)), msg_id=f"reminder:{survey_id}")])

    async def _expire(self, survey_id: str) -> None:
        now = datetime.now(UTC)
        survey = await self.store.surveys.change(survey_id, lambda v: v.model_copy(update={"status": "expired"})
                                                 if v.status == "open" else None)
        if survey is None or survey.status != "expired":
            return
        await outbox.publish(self.publisher, [outbox.item(s.SURVEY_EXPIRED, SurveyExpired(
            survey_id=survey_id, request_id=survey.request_id, channel=survey.channel, occurred_at=now),
            msg_id=f"expired:{survey_id}")])
        await self.store.unlink_replies(survey.reply_keys, survey_id)

    # -- revisits --------------------------------------------------------------------------------
    async def _schedule_revisit(self, view: RequestView, resolved_at: datetime) -> None:
        due = self.hours.clock().add(resolved_at, self.config.duration(self.config.revisit.after, self.hours.workday))
        followup = Followup(followup_id=followup_id_for(view.request_id, view.resolutions),
                            request_id=view.request_id, due=due)
        await self.store.followups.create(followup.followup_id, followup)
        await outbox.publish(self.publisher, [outbox.item(s.FOLLOWUP_SCHEDULED, FollowupScheduled(
            followup_id=followup.followup_id, request_id=view.request_id, due=due, occurred_at=resolved_at),
            msg_id=f"followup:{followup.followup_id}")])
        await timers.schedule(self.publisher, service=TIMER_SERVICE, key=followup.followup_id, name="revisit",
                              at=due, body=RevisitTimer(followup_id=followup.followup_id))

    async def _revisit_task(self, followup_id: str) -> None:
        found = await self.store.followups.get(followup_id)
        if found is None or found[0].status != "scheduled":
            return
        view = (await self.store.views.get(found[0].request_id) or (None, 0))[0]
        if view is None:
            return
        await outbox.publish(self.publisher, [outbox.item(s.outbound_subject(view.channel), m.message(self.mail_domain,
            view, kind="revisit", message_id=f"revisit.{followup_id}", text=m.revisit_text(view, self.config.messages),
            at=datetime.now(UTC)), msg_id=f"revisit:{followup_id}")])
        await self.store.followups.change(followup_id, lambda f: f.model_copy(update={"task_sent": True}))

    async def complete_followup(self, followup_id: str, *, outcome: Outcome, actor: str, note: str | None) -> Followup:
        """Record a revisit's outcome. Repeating the same outcome is harmless (and re-publishes, for
        a caller retrying after a failure); a different one is a conflict."""
        now = datetime.now(UTC)

        def complete(f: Followup) -> Followup | None:
            if f.status == "completed":
                return None
            return f.model_copy(update={"status": "completed", "outcome": outcome, "note": note,
                                        "completed_at": now, "completed_by": actor})

        followup = await self.store.followups.change(followup_id, complete)
        if followup is None:
            raise KeyError(followup_id)
        if followup.outcome != outcome:
            raise FollowupConflict(f"revisit already recorded as {followup.outcome}")
        items = [outbox.item(s.FOLLOWUP_COMPLETED, FollowupCompleted(
            followup_id=followup_id, request_id=followup.request_id, due=followup.due, outcome=outcome,
            occurred_at=followup.completed_at or now), msg_id=f"completed:{followup_id}")]
        if outcome == "recurred":
            items += await self._reopen(followup.request_id, reason="problem recurred (revisit)", key=followup_id,
                                        now=now)
        await outbox.publish(self.publisher, items)
        await timers.cancel(self.publisher, service=TIMER_SERVICE, key=followup_id, name="revisit")
        return followup

    # -- monthly sample --------------------------------------------------------------------------
    async def sample_month(self, month: str) -> list[str]:
        views = []
        for key in await self.store.views.keys():
            found = await self.store.views.get(key)
            if found is not None:
                views.append(found[0])
        chosen = monthly_sample(views, month=month, share=self.config.monthly_sample.share, tz=self.hours.tz)
        now = datetime.now(UTC)
        for view in chosen:
            await self._open_survey(view, survey_id_for(f"sample:{month}:{view.request_id}"), sent_at=now, sample=True)
        log.info("monthly sample surveyed", extra={"month": month, "surveys": len(chosen)})
        return [v.request_id for v in chosen]

    async def start_monthly_schedule(self) -> None:
        await timers.schedule_cron(self.publisher, service=TIMER_SERVICE, key="monthly", name="sample",
                                   cron=self.config.monthly_sample.cron, timezone=self.hours.timezone,
                                   body=MonthlyTimer())
