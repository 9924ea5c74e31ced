from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class FeedbackSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_FEEDBACK_", extra="ignore", populate_by_name=True)

    service_name: str = "feedback"
    http_port: int = 8083
    public_url: str | None = None  # where customers open survey links; default http://<host>:<port>
    survey_secret: SecretStr | None = None  # signs survey links (HMAC-SHA256); required
    batch_size: int = 32

    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"
