"""config/feedback.yaml as models."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.calendar import parse_duration
from shared.config import At
from shared.contract.enums import Channel, Language

WORKDAY = timedelta(hours=9)


class SurveyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: list[Channel] = Field(default_factory=lambda: list(Channel))
    invite_delay: str = "0s"
    expires_after: str = "28d"
    reminder_after: str | None = "7d"
    reopen_at_or_below: int = Field(2, ge=0, le=5)
    low_rating_reasons: dict[Language, list[str]]


class RevisitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: str = "3wd"


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    share: float = Field(0.1, ge=0, le=1)
    cron: str = "0 0 9 1 * *"


class Messages(BaseModel):
    model_config = ConfigDict(extra="forbid")
    result: dict[Language, str]
    survey: dict[Language, str]
    reminder: dict[Language, str]
    revisit: dict[Language, str]


class FeedbackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    survey: SurveyConfig
    revisit: RevisitConfig = Field(default_factory=RevisitConfig)
    monthly_sample: SampleConfig = Field(default_factory=SampleConfig)
    messages: Messages

    def duration(self, text: str, workday: timedelta = WORKDAY) -> timedelta:
        return parse_duration(text, workday)

    @model_validator(mode="after")
    def _durations(self) -> FeedbackConfig:
        for path, text in ((("survey", "invite_delay"), self.survey.invite_delay),
                           (("survey", "expires_after"), self.survey.expires_after),
                           (("survey", "reminder_after"), self.survey.reminder_after),
                           (("revisit", "after"), self.revisit.after)):
            try:
                if text is not None:
                    self.duration(text)
            except ValueError as exc:
                raise At(path, str(exc)) from None
        return self
