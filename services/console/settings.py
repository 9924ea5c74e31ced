from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class ConsoleSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_CONSOLE_", extra="ignore", populate_by_name=True)

    service_name: str = "console"
    http_port: int = 8085
    # the services behind the page (the console forwards the page's API calls to them, with the
    # caller's own token: the page talks to one origin, and works behind one ingress)
    routing_url: str = Field("http://127.0.0.1:8082", description="routing's HTTP API.")
    metrics_url: str = Field("http://127.0.0.1:8084", description="metrics' HTTP API (GET /v1/requests).")
    feedback_url: str = Field("http://127.0.0.1:8083", description="feedback's HTTP API (a request's surveys).")
    upstream_timeout_seconds: float = Field(10, gt=0)
    # the live stream: a comment line this often keeps proxies from closing an idle stream; the
    # last events are kept in memory for pages that reconnect (older ones are read from the log)
    live_keepalive_seconds: float = Field(15, gt=0)
    live_buffer: int = Field(10_000, ge=100)
    live_connections: int = Field(500, ge=1, description="Open live streams per replica; beyond: 503.")

    def graceful_shutdown_seconds(self) -> int:
        """Live streams never finish by themselves: a stopping console gives requests in flight a
        moment, then ends the streams, and each page reconnects (to another replica, or this one
        restarted) from its last event."""
        return 3
