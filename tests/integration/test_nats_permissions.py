"""deploy/nats: every config is valid; the services work with their own least-privilege users
(provisioned by the admin user), and each user is refused outside its allow-list."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from devtools.natsserver import nats_server_binary
from devtools.payloads import payload
from services.console.app import create_app as console_app
from services.console.settings import ConsoleSettings
from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.metrics.app import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.secured import NATS_DIR, PASSWORDS, ROOT, connect, password, standalone
from tests.support.services import common_settings, running, tap, wait_until

pytestmark = pytest.mark.integration
ENV = PASSWORDS | {"KEFU_NATS_STORE_DIR": "/tmp/kefu-nats-config-check"} | {
    f"KEFU_NATS_ROUTE_{n}": f"nats://route:{PASSWORDS['KEFU_NATS_ROUTE_PASSWORD']}@127.0.0.1:{6222 + n}" for n in (1, 2, 3)}


@pytest.mark.parametrize("config", ["standalone.conf", "nats-1.conf", "nats-2.conf", "nats-3.conf"])
def test_nats_server_accepts_every_config(config: str) -> None:
    proc = subprocess.run([nats_server_binary(), "-t", "-c", str(NATS_DIR / config)], env=ENV,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "is valid" in proc.stdout + proc.stderr, proc.stderr


@pytest.fixture
def secured_nats(tmp_path: Path):
    with standalone(tmp_path) as url:
        yield url


def provision_as_admin(url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "devtools.provision"], cwd=ROOT, capture_output=True, text=True,
                          env={"KEFU_NATS_URL": url, "KEFU_NATS_USER": "admin",
                               "KEFU_NATS_PASSWORD": PASSWORDS["KEFU_NATS_ADMIN_PASSWORD"], "PATH": "/usr/bin:/bin"},
                          timeout=60)
    assert done.returncode == 0, done.stderr


def as_user(nats_url: str, user: str, **extra):
    return common_settings(nats_url, nats_user=user, nats_password=password(user),
                           provision=False, config_dir=ROOT / "config", **extra)


async def test_services_work_with_their_own_users_and_nothing_else(secured_nats: str) -> None:
    url = secured_nats
    provision_as_admin(url)

    admin = await connect(url, "admin", inbox="_INBOX")
    admin_url = url.replace("nats://", f"nats://admin:{PASSWORDS['KEFU_NATS_ADMIN_PASSWORD']}@")
    async with running(intake_app, IntakeSettings(**as_user(url, "intake") | {"conversation_windows": "sms=72h"})) \
            as intake, \
            running(routing_app, RoutingSettings(**as_user(url, "routing"))) as routing, \
            running(feedback_app, FeedbackSettings(**as_user(url, "feedback"))) as feedback, \
            running(metrics_app, MetricsSettings(**as_user(url, "metrics"))) as metrics, \
            running(console_app, ConsoleSettings(**as_user(url, "console"), routing_url=routing.base_url,
                                                 metrics_url=metrics.base_url, feedback_url=feedback.base_url)) as console, \
            routing.client() as http, metrics.client() as metrics_http, \
            tap(admin_url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        adapter = await connect(url, "adapter-sms")
        await adapter.jetstream().publish("kefu.intake.sms", payload(Channel.sms, "SM-perm", text="我要投诉"))
        rid = (await events.wait_for(s.REQUEST_ASSIGNED))[0]["request_id"]
        # the conversation: a follow-up appended (intake's threads, routing's follow-up consumer), an
        # agent's reply in the thread, a search of requests (metrics, audited)
        await adapter.jetstream().publish("kefu.intake.sms", payload(Channel.sms, "SM-perm-2", text="还有一件事"))
        await events.wait_for(s.REQUEST_CUSTOMER_WROTE, request_id=rid)
        replied = await http.post(f"/v1/requests/{rid}/reply", json={"text": "收到"})
        assert replied.status_code == 200, replied.text
        await events.wait_for(s.REQUEST_REPLIED, request_id=rid)

        async def found() -> bool:
            answer = await metrics_http.get("/v1/requests", params={"ref": rid[4:12]})
            assert answer.status_code == 200, answer.text
            return [r["request_id"] for r in answer.json()["requests"]] == [rid]
        await wait_until(found, what="the request found through metrics under its own user")
        resolved = await http.post(f"/v1/requests/{rid}/resolve", json={"resolution": "ok"})
        await events.wait_for(s.SURVEY_SENT, request_id=rid)
        assert resolved.status_code == 200
        # the monthly sample lists feedback's request views (stream info by subject, no consumer)
        month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
        async with feedback.client() as feedback_http:
            sample = await feedback_http.post("/v1/samples/monthly", params={"month": month})
            links = await feedback_http.get(f"/v1/requests/{rid}/surveys")  # audited: kefu.audit.survey.read
        assert links.status_code == 200 and "?t=" in links.json()["surveys"][0]["link"]
        assert sample.status_code == 200 and sample.json()["surveyed"] == 0  # the one resolved was surveyed
        assert (await metrics_http.get("/readyz")).status_code == 200
        # a mail larger than a NATS message: its attachment into kefu_attachments under intake's user
        from tests.integration.test_gateway_mail import with_attachment
        async with intake.client("test-adapter-key") as adapter_http:
            large = await adapter_http.post("/v1/intake/email", content=with_attachment(9, 1_200_000),
                                            headers={"Content-Type": "message/rfc822"})
        assert large.status_code == 202, large.text
        # the console under its own user: a supervisor's live stream from the log's start (direct
        # gets), scoped by routing's record (a read of kefu_requests)
        sup = (await http.post("/v1/tokens", json={"subject": "sup", "role": "supervisor", "departments": [
            "customer_service", "quality", "production", "after_sales", "business", "hr", "coordination"]})).json()["token"]
        async with console.client(sup) as console_http, \
                console_http.stream("GET", "/v1/live", headers={"Last-Event-ID": "0"}) as live:
            first = await anext(line async for line in live.aiter_lines() if line.startswith("data:"))
        assert rid in first

        refused: dict[str, list[str]] = {}
        for user, subject, listen in (("intake", s.REQUEST_ASSIGNED, s.EVENTS_ALL),
                                      ("metrics", s.REQUEST_RECEIVED, "kefu.outbound.>"),
                                      ("console", s.REQUEST_ASSIGNED, s.EVENTS_ALL),
                                      ("adapter-sms", s.REQUEST_RECEIVED, s.EVENTS_ALL),
                                      ("routing", "kefu.intake.sms", "_INBOX_intake.>")):
            errors: list[str] = []
            nc = await connect(url, user, errors)
            await nc.publish(subject, json.dumps({"request_id": "req_forged"}).encode())
            await nc.subscribe(listen)
            await nc.flush()
            await asyncio.sleep(0)  # let the error callbacks run
            for _ in range(50):
                if len(errors) >= 2:
                    break
                await asyncio.sleep(0.02)
            refused[user] = errors
            await nc.close()
        await adapter.close()
    await admin.close()
    for user, errors in refused.items():
        assert len(errors) == 2 and all("permissions violation" in e.lower() for e in errors), (user, errors)
    assert not any(e["request_id"] == "req_forged" for _, e in events.messages)


async def test_the_gateway_works_with_its_own_user(secured_nats: str) -> None:
    """Pushes stored in KEFU_INTAKE, a mailbox read (its place kept in KV), the channels' durables
    created and read, a failure reported: all under the user `gateway` of the shipped accounts.conf."""
    from contextlib import ExitStack

    from tests.integration.test_gateway_mail import deliver, mail
    from tests.support.dovecot import dovecot

    stack = ExitStack()
    from twilio.request_validator import RequestValidator

    from services.gateway.app import create_app as gateway_app
    from services.gateway.settings import GatewaySettings
    from shared.contract.enums import Language
    from shared.contract.models import OutboundMessage

    url = secured_nats
    provision_as_admin(url)
    admin_url = url.replace("nats://", f"nats://admin:{PASSWORDS['KEFU_NATS_ADMIN_PASSWORD']}@")
    public = "https://kefu.example.cn/gateway"
    imap = stack.enter_context(dovecot())
    settings = as_user(url, "gateway", platforms="wechat,sms,mail", sms_auth_token="auth", sms_public_url=public,
                       wechat_token="t", wechat_api_base="http://127.0.0.1:9", sms_api_base="http://127.0.0.1:9",
                       mail_imap_host=imap.host, mail_imap_port=imap.port, mail_imap_tls=False, mail_imap_user=imap.user,
                       mail_imap_password=imap.password)
    await asyncio.to_thread(deliver, imap, mail(1))
    async with running(gateway_app, GatewaySettings(**settings)) as gateway, \
            tap(admin_url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        form = {"MessageSid": "SM-gw-perm", "From": "+8613800138033", "To": "+861069000000", "Body": "hi"}
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            stored = await http.post("/sms", data=form, headers={
                "X-Twilio-Signature": RequestValidator("auth").compute_signature(f"{public}/sms", form)})
        admin = await connect(url, "admin", inbox="_INBOX")
        kept = await admin.jetstream().get_last_msg(s.STREAM_INTAKE, "kefu.intake.sms")

        async def mailbox_read() -> bool:  # the mail stored, and how far the mailbox was read kept in KV
            try:
                await admin.jetstream().get_last_msg(s.STREAM_INTAKE, "kefu.intake.email")
                return bool(await (await admin.jetstream().key_value(s.BUCKET_GATEWAY_MAIL)).keys())
            except Exception:  # noqa: BLE001 - not yet
                return False
        await wait_until(mailbox_read, what="the mailbox read under the gateway's user")
        await admin.jetstream().publish(s.outbound_subject("wechat"), OutboundMessage(
            message_id="m-perm", channel="wechat", kind="reply", to={}, language=Language.zh,
            text="x").model_dump_json().encode(), headers={"Nats-Msg-Id": "m-perm"})
        failed = (await events.wait_for(s.OUTBOUND_FAILED, message_id="m-perm"))[0]
        consumers = {c.name for c in await admin.jetstream().consumers_info(s.STREAM_OUTBOUND)}
        await admin.close()
    assert stored.status_code == 200 and failed["reason"] == "no_address"
    assert b"MessageSid=SM-gw-perm" in kept.data and kept.headers["Nats-Msg-Id"] == "sms.SM-gw-perm"
    assert {"adapter-wechat", "adapter-sms", "adapter-email"} <= consumers
    stack.close()
