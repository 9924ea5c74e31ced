from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class MetricsSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_METRICS_", extra="ignore", populate_by_name=True)

    service_name: str = "metrics"
    http_port: int = 8084
    # reports read the log from this many days before the period, to know the requests resolved in it
    report_lookback_days: int = 90
