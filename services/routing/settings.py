from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class RoutingSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_ROUTING_", extra="ignore", populate_by_name=True)

    service_name: str = "routing"
    http_port: int = 8082
    batch_size: int = 32
    # the messages of one fetch (batch_size) are handled concurrently; workers > 1 keeps that many in
    # flight across fetches (each is idempotent; state changes are revision-checked).
    # 1 by default: on 2 cores more did not raise throughput, and FastStream 0.7.8's concurrent pull
    # subscriber logs ClosedResourceError when stopped with messages in its buffer (they are
    # redelivered, nothing is lost) - see docs/performance.md
    workers: int = 1
