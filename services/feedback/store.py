"""Feedback's state in JetStream KV: its view of requests, surveys, open-survey contacts, revisits."""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared.contract import subjects as s
from shared.nats.kv import ModelBucket

from .domain.followup import Followup
from .domain.survey import RequestView, Survey


class FeedbackStore:
    def __init__(self, *, views: KeyValue, surveys: KeyValue, open_surveys: KeyValue, followups: KeyValue) -> None:
        self.views = ModelBucket(views, RequestView)
        self.surveys = ModelBucket(surveys, Survey)
        self.followups = ModelBucket(followups, Followup)
        self.open_surveys = open_surveys

    @classmethod
    async def open(cls, js: JetStreamContext) -> FeedbackStore:
        return cls(
            views=await js.key_value(s.BUCKET_FEEDBACK_REQUESTS),
            surveys=await js.key_value(s.BUCKET_SURVEYS),
            open_surveys=await js.key_value(s.BUCKET_OPEN_SURVEYS),
            followups=await js.key_value(s.BUCKET_FOLLOWUPS),
        )

    async def link_replies(self, keys: list[str], survey_id: str) -> None:
        """A reply from any of these contacts answers this survey (the newest survey wins)."""
        for key in keys:
            await self.open_surveys.put(key, survey_id.encode())

    async def unlink_replies(self, keys: list[str], survey_id: str) -> None:
        for key in keys:
            try:
                entry = await self.open_surveys.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue
            if entry.value and entry.value.decode() == survey_id:
                try:
                    await self.open_surveys.delete(key, last=entry.revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    pass  # re-pointed to a newer survey meanwhile
