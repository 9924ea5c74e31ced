"""Mail through the gateway against real servers: a mailbox on Debian's dovecot read over IMAP
(IDLE; across a restart of the gateway nothing is lost or read twice; what was stored is marked),
mail taken over SMTP from Python's smtplib (250 only once stored; too large refused), and kefu's
receipt sent in its thread to an aiosmtpd server (a relay that answers 4xx first is retried)."""

from __future__ import annotations

import asyncio
import email
import imaplib
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from devtools.natsserver import free_port
from services.gateway.app import create_app as gateway_app
from services.gateway.settings import GatewaySettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from tests.support.dovecot import Imap, dovecot
from tests.support.services import common_settings, running, tap

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"


def mail(n: int, text: str = "我的订单还没到") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {n} <customer{n}@example.cn>"
    msg["To"] = "support@kefu.example.cn"
    msg["Subject"] = f"订单问题 {n}"
    msg["Message-ID"] = f"<order-{n}@example.cn>"
    msg.set_content(f"{text} ({n})")
    return msg.as_bytes(policy=policy.SMTP)  # CRLF, as mail travels


def with_attachment(n: int, size: int) -> bytes:
    msg = email.message_from_bytes(mail(n), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(b"\xff" * size, maintype="image", subtype="jpeg", filename="photo.jpg")
    return msg.as_bytes(policy=policy.SMTP)


def deliver(imap: Imap, *raws: bytes) -> None:
    box = imaplib.IMAP4(imap.host, imap.port)
    box.login(imap.user, imap.password)
    for raw in raws:
        box.append("INBOX", None, None, raw)
    box.logout()


def flags(imap: Imap) -> list[bytes]:
    box = imaplib.IMAP4(imap.host, imap.port)
    box.login(imap.user, imap.password)
    box.select("INBOX")
    found = box.uid("FETCH", "1:*", "(FLAGS)")[1]
    box.logout()
    return [line for line in found if isinstance(line, bytes)]


class Relay:
    """aiosmtpd's handler as the site's relay: answers 451 to the first mail, then takes them."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.refused_once = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.refused_once:
            self.refused_once = True
            return "451 4.3.2 try again later"
        self.received.append(email.message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


async def test_mail_in_over_imap_and_smtp_and_out_in_the_thread(nats_server) -> None:
    relay = Relay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    smtp_in = free_port()
    settings = common_settings(nats_server.url, config_dir=CONFIG, retry_backoff_seconds=(0.1, 0.2, 0.3))
    try:
        with dovecot() as imap:
            deliver(imap, mail(1), mail(2))  # waiting before the gateway ever started
            gateway_settings = dict(
                platforms="mail", mail_imap_host=imap.host, mail_imap_port=imap.port, mail_imap_tls=False,
                mail_imap_user=imap.user, mail_imap_password=imap.password, mail_imap_poll_seconds=1,
                mail_smtp_listen_port=smtp_in, mail_smtp_domains="kefu.example.cn", mail_smtp_max_bytes=3_000_000,
                mail_smtp_host="127.0.0.1", mail_smtp_port=controller.port, mail_smtp_starttls=False,
                mail_from="support@kefu.example.cn", mail_from_name="客服")
            async with running(intake_app, IntakeSettings(**settings)), \
                    running(routing_app, RoutingSettings(**settings)), \
                    tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
                async with running(gateway_app, GatewaySettings(**settings, **gateway_settings)):
                    await events.wait_for(s.REQUEST_RECEIVED, count=2)
                    await asyncio.to_thread(deliver, imap, mail(3))  # while IDLE
                    await events.wait_for(s.REQUEST_RECEIVED, count=3)
                    smtp = await asyncio.to_thread(send_smtp, smtp_in)
                    await events.wait_for(s.REQUEST_RECEIVED, count=5)
                # the gateway stopped; mail arrives; another start reads on from where it was
                await asyncio.to_thread(deliver, imap, mail(5))
                async with running(gateway_app, GatewaySettings(**settings, **gateway_settings)) as second:
                    await events.wait_for(s.REQUEST_RECEIVED, count=6)
                    async with second.client() as http:
                        counted = (await http.get("/metrics")).text
                    async with asyncio.timeout(30):
                        while len(relay.received) < 6:  # the six receipts, the first after a 451
                            await asyncio.sleep(0.05)
                received = events.of(s.REQUEST_RECEIVED)
                marked = await asyncio.to_thread(flags, imap)
    finally:
        controller.stop()

    assert sorted(e["source_id"] for e in received) == [f"order-{n}@example.cn" for n in (1, 2, 3, 4, 5, 8)]
    big = next(e for e in received if e["source_id"] == "order-8@example.cn")
    assert [(a["name"], a["size"]) for a in big["attachments"]] == [("photo.jpg", 2_000_000)]
    assert big["attachments"][0]["url"].startswith("nats-object://kefu_attachments/")
    # the second start read only the one new mail: nothing stored again, not even as a duplicate
    assert 'kefu_gateway_pushes_total{outcome="stored",platform="mail"} 1.0' in counted
    assert 'kefu_gateway_pushes_total{outcome="duplicate",platform="mail"} 0.0' in counted
    assert smtp["accepted"] == smtp["attachment"] == {}
    assert smtp["foreign"].startswith("550") and smtp["large"].startswith("552")
    assert len(marked) == 4 and all(b"$KefuProcessed" in line and b"\\Seen" in line for line in marked)
    receipt = next(m for m in relay.received if m["To"] == "customer1@example.cn")
    assert receipt["Message-ID"].startswith("<kefu.") and receipt["In-Reply-To"] == "<order-1@example.cn>"
    assert "[" in receipt["Subject"] and receipt["Auto-Submitted"] == "auto-replied"
    assert receipt["From"] == "客服 <support@kefu.example.cn>"
    assert relay.refused_once


def send_smtp(port: int) -> dict[str, Any]:
    import smtplib

    seen: dict[str, Any] = {}
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        seen["accepted"] = client.sendmail("customer4@example.cn", ["support@kefu.example.cn"], mail(4))
        try:
            client.sendmail("x@example.cn", ["someone@elsewhere.example"], mail(6))
        except smtplib.SMTPRecipientsRefused as refused:
            seen["foreign"] = f"{refused.recipients['someone@elsewhere.example'][0]}"
        seen["attachment"] = client.sendmail("customer8@example.cn", ["support@kefu.example.cn"],
                                             with_attachment(8, 2_000_000))  # kept: the photo to the object store
        try:
            client.sendmail("customer7@example.cn", ["support@kefu.example.cn"], with_attachment(7, 4_000_000))
        except smtplib.SMTPDataError as large:
            seen["large"] = f"{large.smtp_code}"
        except smtplib.SMTPSenderRefused as large:
            seen["large"] = f"{large.smtp_code}"
    return seen


class Refusing:
    """A relay that refuses every recipient for good (550)."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        return "550 5.1.1 no such user"


async def test_without_idle_the_mailbox_is_polled_and_read_mail_is_moved_and_a_refusal_is_reported(nats_server) -> None:
    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    try:
        with dovecot(idle=False) as imap:
            deliver(imap, mail(20))  # read at start
            async with running(intake_app, IntakeSettings(**settings)), \
                    running(routing_app, RoutingSettings(**settings)), \
                    running(gateway_app, GatewaySettings(
                        **settings, platforms="mail", mail_imap_host=imap.host, mail_imap_port=imap.port,
                        mail_imap_tls=False, mail_imap_user=imap.user, mail_imap_password=imap.password,
                        mail_imap_poll_seconds=0.2, mail_imap_processed="move:Done", mail_smtp_host="127.0.0.1",
                        mail_smtp_port=controller.port, mail_smtp_starttls=False, mail_from="support@kefu.example.cn")), \
                    tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
                await events.wait_for(s.REQUEST_RECEIVED, source_id="order-20@example.cn")
                await asyncio.to_thread(deliver, imap, mail(21))  # found by the next poll: no IDLE here
                received = (await events.wait_for(s.REQUEST_RECEIVED, source_id="order-21@example.cn"))[0]
                failed = (await events.wait_for(s.OUTBOUND_FAILED, request_id=received["request_id"]))[0]
                folders = await asyncio.to_thread(counts, imap)
    finally:
        controller.stop()
    assert received["source_id"] == "order-21@example.cn"
    assert folders == {"INBOX": 0, "Done": 2}  # read mail moved, as configured
    assert failed["request_id"] == received["request_id"] and failed["reason"] == "refused" and "550" in failed["detail"]


def counts(imap: Imap) -> dict[str, int]:
    box = imaplib.IMAP4(imap.host, imap.port)
    box.login(imap.user, imap.password)
    found = {}
    for folder in ("INBOX", "Done"):
        status = box.status(folder, "(MESSAGES)")[1][0]
        found[folder] = int(status.split(b"MESSAGES ")[1].rstrip(b")")) if status else 0
    box.logout()
    return found
