from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class IntakeSettings(KefuSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_INTAKE_", extra="ignore", populate_by_name=True)

    service_name: str = "intake"
    http_port: int = 8081
    max_payload_bytes: int = 512 * 1024
    # a mail up to this size is taken over HTTP: its large attachments go to the object store
    # (kefu_attachments) and what is kept is the mail without them (docs/channels.md#email)
    max_mail_bytes: int = 25 * 1024 * 1024
    kept_reject_bytes: int = 512 * 1024
    timezone: str = "Asia/Shanghai"  # the channels' local time, for payload times without an offset
    phone_region: str = "CN"  # numbers without a country code are read as this region's
    # authserv-ids of your receiving mail servers (comma-separated): a mail whose Authentication-Results
    # from one of them says dmarc=pass proves its sender address (docs/security.md#identity)
    mail_authserv_ids: str = ""
    # channels a customer's next message continues their open request on by contact, each with its
    # conversation window since the request's last activity (docs/conversations.md); add `phone=24h`
    # or `walkin=24h` to thread those too, `wechat=0` turns a channel off
    conversation_windows: str = "wechat=72h,sms=72h,app=72h"
    batch_size: int = 32
    # the messages of one fetch (batch_size) are handled concurrently; workers > 1 keeps that many in
    # flight across fetches (each is idempotent; state changes are revision-checked).
    # 1 by default: on 2 cores more did not raise throughput, and FastStream 0.7.8's concurrent pull
    # subscriber logs ClosedResourceError when stopped with messages in its buffer (they are
    # redelivered, nothing is lost) - see docs/performance.md
    workers: int = 1
    # signing secrets of adapters that sign webhooks instead of sending a key: `name:secret,...`
    adapter_secrets: SecretStr | None = None
    rate_limit_per_second: float = 50.0  # per adapter and process; 429 beyond
    rate_limit_burst: int = 200

    def adapter_secret_map(self) -> dict[str, str]:
        if self.adapter_secrets is None:
            return {}
        pairs = (item.strip().partition(":") for item in self.adapter_secrets.get_secret_value().split(","))
        return {name: secret for name, sep, secret in pairs if sep and secret}
