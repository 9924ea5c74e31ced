"""Settings base: environment variables prefixed `KEFU_`, built in each service's composition root.

Settings shared by every service (NATS, credentials, config dir) are read from `KEFU_<NAME>`; a
service's own settings from `KEFU_<SERVICE>_<NAME>` (e.g. `KEFU_INTAKE_HTTP_PORT`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# config/ of the repository, installed with the package as shared/defaults (a link in the source tree)
DEFAULT_CONFIG_DIR = Path(__file__).parent / "defaults"


def _common(name: str) -> AliasChoices:
    return AliasChoices(name, f"KEFU_{name.upper()}")


class KefuSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore", populate_by_name=True)

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias=_common("nats_url"))
    nats_user: str | None = Field(None, validation_alias=_common("nats_user"))
    nats_password: SecretStr | None = Field(None, validation_alias=_common("nats_password"))
    nats_creds: Path | None = Field(
        None, validation_alias=_common("nats_creds"), description="Path to a NATS .creds file."
    )
    config_dir: Path = Field(
        DEFAULT_CONFIG_DIR, validation_alias=_common("config_dir"),
        description="Directory of rules, departments, calendars, SLA policies and messages. Default: the "
        "configuration shipped with kefu (the repository's config/).")

    admin_token: SecretStr | None = Field(None, validation_alias=_common("admin_token"))
    token_secret: SecretStr | None = Field(
        None,
        validation_alias=_common("token_secret"),
        description="Key that signs and verifies staff tokens (agents, supervisors, admins); the same "
        "in every service. Derived from the admin token when not set.",
    )
    adapter_keys: SecretStr | None = Field(
        None,
        validation_alias=_common("adapter_keys"),
        description="Comma-separated adapter keys, each optionally named: `wechat:k1,sms:k2`.",
    )

    # JetStream tuning, shared so every service provisions the same streams
    stream_replicas: int = Field(1, ge=1, le=5, validation_alias=_common("stream_replicas"))
    duplicate_window_seconds: int = Field(
        7200, ge=60, validation_alias=_common("duplicate_window_seconds")
    )
    ack_wait_seconds: float = Field(30, gt=0, validation_alias=_common("ack_wait_seconds"))
    stream_max_bytes: int | None = Field(
        None,
        gt=0,
        validation_alias=_common("stream_max_bytes"),
        description="Size bound of each stream (JetStream reserves it); a full stream refuses new "
        "messages (discard: new). Unbounded by default for development; deployments set it.",
    )
    # retention (days): how long each kind of record is kept; see docs/reliability.md#retention
    retention_events_days: int = Field(400, ge=35, validation_alias=_common("retention_events_days"),
                                       description="The event log (history of every request, source of the "
                                       "indicators and reports).")
    retention_raw_days: int = Field(30, ge=1, validation_alias=_common("retention_raw_days"),
                                    description="Raw payloads as adapters sent them (KEFU_INTAKE).")
    retention_rejected_days: int = Field(90, ge=1, validation_alias=_common("retention_rejected_days"))
    retention_outbound_days: int = Field(14, ge=1, validation_alias=_common("retention_outbound_days"))
    retention_audit_days: int = Field(400, ge=1, validation_alias=_common("retention_audit_days"))
    retention_records_days: int | None = Field(
        None, ge=35, validation_alias=_common("retention_records_days"),
        description="Request, survey and revisit records untouched this long are removed (KV TTL). "
        "Unset: kept. Set it longer than any request may stay open.")
    attachments_max_bytes: int | None = Field(
        None, gt=0, validation_alias=_common("attachments_max_bytes"),
        description="Size bound of the object store of large mail's attachments (kefu_attachments); kept as long "
        "as raw payloads (KEFU_RETENTION_RAW_DAYS). Unbounded by default for development; deployments set it.")
    timezone: str = Field("Asia/Shanghai", validation_alias=_common("timezone"),
                          description="Local time zone: calendar days of the outbound cap.")
    outbound_daily_cap: int = Field(
        20, ge=1, validation_alias=_common("outbound_daily_cap"),
        description="Most messages sent to one customer per calendar day (receipts, progress, results, "
        "surveys, revisits); beyond it a message is held back and counted.")
    outbound_automatic_per_hour: int = Field(
        5, ge=1, validation_alias=_common("outbound_automatic_per_hour"),
        description="Loop guard: most automatic messages (receipts, notices, surveys, revisits) sent to one "
        "address per hour, whatever the incoming mail's headers said; beyond it they are held back and counted.")
    mail_domain: str = Field(
        "kefu.invalid", pattern=r"^[A-Za-z0-9.-]{1,200}$", validation_alias=_common("mail_domain"),
        description="Domain of the Message-IDs kefu's e-mails are sent with (your support address's domain).")
    consumer_check_seconds: float = Field(
        10, gt=0, validation_alias=_common("consumer_check_seconds"),
        description="How often each consumer's backlog and progress are read; a consumer that has "
        "messages waiting and did not move between two reads makes the service not ready.")
    max_deliver: int = Field(8, ge=2, validation_alias=_common("max_deliver"))
    retry_backoff_seconds: tuple[float, ...] = Field(
        (0.5, 2, 5, 15, 30, 60), validation_alias=_common("retry_backoff_seconds")
    )

    config_reload_seconds: float = Field(
        5, gt=0, validation_alias=_common("config_reload_seconds"),
        description="How often a service looks for changed configuration files (also on SIGHUP); a valid "
        "change is applied without a restart, an invalid one is refused and the running one kept.")
    log_level: str = Field("INFO", validation_alias=_common("log_level"))
    provision: bool = Field(
        True,
        validation_alias=_common("provision"),
        description="Create/update streams and buckets at start. Deployments turn it off and run "
        "`python -m devtools.provision` with an admin NATS user, so services need no stream-admin rights.",
    )

    # per service (overridden with the service's prefix)
    http_host: str = "127.0.0.1"
    http_port: int = 0
    service_name: str = "kefu"

    @field_validator("token_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("KEFU_TOKEN_SECRET must be at least 32 bytes (HS256 key; e.g. openssl rand -base64 32)")
        return value

    def graceful_shutdown_seconds(self) -> int:
        """How long a stopping service lets open HTTP requests finish: as long as a message may
        take (a request's handling publishes and acks within the ack wait)."""
        return int(self.ack_wait_seconds)

    def adapter_key_map(self) -> dict[str, str]:
        """key -> adapter name."""
        if self.adapter_keys is None:
            return {}
        keys: dict[str, str] = {}
        for i, item in enumerate(p.strip() for p in self.adapter_keys.get_secret_value().split(",")):
            if not item:
                continue
            name, sep, key = item.partition(":")
            keys[key if sep else name] = name if sep else f"adapter{i}"
        return keys
