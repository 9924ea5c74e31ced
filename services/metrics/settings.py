from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class MetricsSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_METRICS_", extra="ignore", populate_by_name=True)

    service_name: str = "metrics"
    http_port: int = 8084
    # reports read the log from this many days before the period, to know the requests resolved in it
    report_lookback_days: int = 90
    # reports replay the log; at most this many replays run at once per replica, and this many more
    # may wait for one (beyond: 429); a period's replay is kept for reuse (a closed one until evicted)
    report_concurrency: int = 2
    report_queue: int = 8
    reports_kept: int = 6
    # the lookup index (GET /v1/requests): a file on a volume keeps it across restarts; empty: SQLite's
    # private temporary file (in the temp directory, deleted on exit), rebuilt with the replay at
    # start; ":memory:" keeps it all in memory (docs/conversations.md#finding-requests-again)
    index_path: str = ""
    phone_region: str = "CN"  # a phone number searched for without a country code is read as this region's
