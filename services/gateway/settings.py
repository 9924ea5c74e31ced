from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class GatewaySettings(KefuSettings):
    """Which platforms this gateway speaks to, and each one's credentials (docs/channels.md)."""

    model_config = SettingsConfigDict(env_prefix="KEFU_GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: str = "gateway"
    http_port: int = 8086
    platforms: str = Field("", description="Comma-separated: `wechat`, `sms`, `mail`. Each needs its settings below; "
                           "empty: the gateway serves nothing but its health.")
    batch_size: int = Field(16, ge=1, le=256)
    api_timeout_seconds: float = Field(10, gt=0)

    # WeChat official account (公众号): 基本配置 -> 服务器配置
    wechat_token: SecretStr | None = Field(None, description="The Token set on WeChat's side.")
    wechat_app_id: str = Field("", description="The official account's AppID.")
    wechat_app_secret: SecretStr | None = Field(None, description="AppSecret: fetches access tokens to send.")
    wechat_encoding_aes_key: SecretStr | None = Field(
        None, description="EncodingAESKey (43 characters): needed in compatible and safe mode.")
    wechat_api_base: str = Field("https://api.weixin.qq.com", description="WeChat's API; tests point it elsewhere.")
    wechat_replay_window_seconds: int = Field(300, ge=30, le=3600)

    # SMS through a Twilio-compatible gateway
    sms_account_sid: str = ""
    sms_auth_token: SecretStr | None = Field(None, description="Signs the webhooks, authenticates the API calls.")
    sms_from: str = Field("", description="The number (or Messaging Service SID, MG...) kefu sends from.")
    sms_api_base: str = Field("https://api.twilio.com", description="The gateway's API; tests point it elsewhere.")
    sms_public_url: str = Field(
        "", description="The address the gateway posts to, as configured on its side (e.g. "
        "https://kefu.example.cn/gateway): webhook signatures cover the full URL, which a proxy in "
        "front of kefu changes. Empty: the URL as the request arrived (no proxy), and no status "
        "callbacks (kefu does not know its own address). Status callbacks go to <this>/sms/status.")

    # Mail: a mailbox read over IMAP, and/or an SMTP server for an MX or forwarder; kefu's mail sent
    # through the site's SMTP relay
    mail_imap_host: str = Field("", description="Read this mailbox (empty: no IMAP).")
    mail_imap_port: int = 993
    mail_imap_tls: bool = Field(True, description="IMAP over TLS (993); false: plain (a local server only).")
    mail_imap_user: str = ""
    mail_imap_password: SecretStr | None = None
    mail_imap_folder: str = "INBOX"
    mail_imap_processed: str = Field("flag", pattern=r"^(flag|move:.{1,200})$", description="What becomes of a "
                                     "message once stored: `flag` (\\Seen and $KefuProcessed) or `move:<folder>`.")
    mail_imap_poll_seconds: float = Field(60, gt=0, description="How often to look without IDLE (and the longest "
                                          "an IDLE waits before looking anyway).")
    mail_smtp_listen_port: int = Field(0, ge=0, le=65535, description="Take mail over SMTP on this port (0: off).")
    mail_smtp_listen_host: str = "127.0.0.1"
    mail_smtp_domains: str = Field("", description="Comma-separated domains whose mail is taken (empty: any).")
    mail_smtp_max_bytes: int = Field(25 * 1024 * 1024, ge=10_000, le=100 * 1024 * 1024, description="Larger mail "
                                     "is refused (552). Attachments of large mail go to the object store "
                                     "kefu_attachments (docs/channels.md#mail).")
    mail_smtp_host: str = Field("", description="The relay kefu's mail goes out through (empty: no sending).")
    mail_smtp_port: int = 587
    mail_smtp_starttls: bool = True
    mail_smtp_user: str = ""
    mail_smtp_password: SecretStr | None = None
    mail_from: str = Field("", description="The support address kefu's mail comes from.")
    mail_from_name: str = ""

    def enabled(self) -> set[str]:
        return {p.strip() for p in self.platforms.split(",") if p.strip()}
