from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class FeedbackSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_FEEDBACK_", extra="ignore", populate_by_name=True)

    service_name: str = "feedback"
    http_port: int = 8083
