from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import KefuSettings


class GatewaySettings(KefuSettings):
    """Which platforms this gateway speaks to, and each one's credentials (docs/channels.md)."""

    model_config = SettingsConfigDict(env_prefix="KEFU_GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: str = "gateway"
    http_port: int = 8086
    platforms: str = Field("", description="Comma-separated: `wechat`, `sms`. Each needs its settings below; "
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
        "front of kefu changes. Status callbacks are sent to <this>/sms/status.")

    def enabled(self) -> set[str]:
        return {p.strip() for p in self.platforms.split(",") if p.strip()}
