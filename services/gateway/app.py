"""Composition root of the gateway: the platforms' webhooks (api.py), the outbound consumers
(handlers.py), the platforms' send APIs (clients.py). Stateless; it holds no staff endpoints and
so reads no token revocations."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from shared.runtime import Late, Runtime, base_app, make_runtime

from .api import build_api
from .clients import SmsApi, WeChatApi
from .handlers import PUBLISHES, build_router
from .service import Gateway, GatewayMetrics
from .settings import GatewaySettings

DESCRIPTION = ("The platforms' own protocols at kefu's edge: WeChat official-account pushes and sends, "
               "Twilio-compatible SMS webhooks, sends and delivery statuses.")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    platforms = settings.enabled()
    runtime = make_runtime(settings, consumer="gateway", publishes=PUBLISHES, staff_api=False)
    metrics = GatewayMetrics(runtime.registry)
    gateway: Late[Gateway] = Late("gateway")
    timeout = httpx.Timeout(settings.api_timeout_seconds)
    clients: list[httpx.AsyncClient] = []

    async def on_start(rt: Runtime) -> None:
        assert rt.publisher is not None
        wechat = sms = None
        if "wechat" in platforms:
            http = httpx.AsyncClient(base_url=settings.wechat_api_base, timeout=timeout)
            clients.append(http)
            wechat = WeChatApi(http, app_id=settings.wechat_app_id, app_secret=(
                settings.wechat_app_secret.get_secret_value() if settings.wechat_app_secret else ""))
        if "sms" in platforms:
            http = httpx.AsyncClient(base_url=settings.sms_api_base, timeout=timeout)
            clients.append(http)
            sms = SmsApi(http, account_sid=settings.sms_account_sid, sender=settings.sms_from, auth_token=(
                settings.sms_auth_token.get_secret_value() if settings.sms_auth_token else ""))
        rt.service = gateway.set(Gateway(rt.publisher, metrics, wechat=wechat, sms=sms,
                                         sms_public_url=settings.sms_public_url))

    async def on_stop(_: Runtime) -> None:
        for http in clients:
            await http.aclose()

    runtime.broker.include_router(build_router(runtime, gateway, platforms=platforms, batch_size=settings.batch_size))
    app = base_app(runtime, title="kefu gateway", description=DESCRIPTION, on_start=on_start, on_stop=on_stop)
    app.include_router(build_api(settings, gateway))
    return app
