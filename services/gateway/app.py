"""Composition root of the gateway: the platforms' webhooks (api.py), the outbound consumers
(handlers.py), the platforms' send APIs (clients.py). Stateless; it holds no staff endpoints and
so reads no token revocations."""

from __future__ import annotations

import asyncio

import httpx
from aiosmtpd.smtp import SMTP
from fastapi import FastAPI

from shared.contract import subjects as s
from shared.runtime import Late, Runtime, base_app, make_runtime

from .api import build_api
from .clients import SmsApi, WeChatApi
from .handlers import PUBLISHES, build_router
from .mail import ImapFollower, SmtpIntake, SmtpSender, Store
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
    servers: list[asyncio.Server] = []

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
        mail = None
        if "mail" in platforms and settings.mail_smtp_host:
            mail = SmtpSender(
                host=settings.mail_smtp_host, port=settings.mail_smtp_port, user=settings.mail_smtp_user,
                password=settings.mail_smtp_password.get_secret_value() if settings.mail_smtp_password else "",
                starttls=settings.mail_smtp_starttls, sender=settings.mail_from, sender_name=settings.mail_from_name,
                timeout=settings.api_timeout_seconds)
        rt.service = gateway.set(Gateway(rt.publisher, metrics, js=rt.js, wechat=wechat, sms=sms, mail=mail,
                                         sms_public_url=settings.sms_public_url))
        if "mail" in platforms:
            await start_mail_intake(rt, gateway().store_mail)

    async def start_mail_intake(rt: Runtime, store: Store) -> None:
        """The mailbox reader and the SMTP server, each storing what comes in through the gateway."""
        assert rt.js is not None
        if settings.mail_imap_host:
            follower = ImapFollower(
                host=settings.mail_imap_host, port=settings.mail_imap_port, tls=settings.mail_imap_tls,
                user=settings.mail_imap_user, folder=settings.mail_imap_folder, processed=settings.mail_imap_processed,
                password=settings.mail_imap_password.get_secret_value() if settings.mail_imap_password else "",
                poll=settings.mail_imap_poll_seconds, bucket=await rt.js.key_value(s.BUCKET_GATEWAY_MAIL), store=store)
            rt.tasks.append(asyncio.create_task(follower.run()))
        if settings.mail_smtp_listen_port:
            intake = SmtpIntake(store, domains={d.strip() for d in settings.mail_smtp_domains.split(",") if d.strip()})
            server = await asyncio.get_running_loop().create_server(
                lambda: SMTP(intake, data_size_limit=settings.mail_smtp_max_bytes, hostname=settings.mail_domain,
                             enable_SMTPUTF8=True),
                host=settings.mail_smtp_listen_host, port=settings.mail_smtp_listen_port)
            servers.append(server)

    async def on_stop(_: Runtime) -> None:
        for server in servers:
            server.close()
            await server.wait_closed()
        for http in clients:
            await http.aclose()

    runtime.broker.include_router(build_router(runtime, gateway, platforms=platforms, batch_size=settings.batch_size))
    app = base_app(runtime, title="kefu gateway", description=DESCRIPTION, on_start=on_start, on_stop=on_stop)
    app.include_router(build_api(settings, gateway))
    return app
