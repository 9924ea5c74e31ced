from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class IntakeSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_INTAKE_", extra="ignore", populate_by_name=True)

    service_name: str = "intake"
    http_port: int = 8081
    max_payload_bytes: int = 512 * 1024
    kept_reject_bytes: int = 512 * 1024
    timezone: str = "Asia/Shanghai"  # the channels' local time, for payload times without an offset
    phone_region: str = "CN"  # numbers without a country code are read as this region's
    batch_size: int = 32
