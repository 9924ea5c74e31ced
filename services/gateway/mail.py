"""Mail's edges at the gateway: a mailbox read over IMAP (IDLE, or polling where the server has
no IDLE), an SMTP server for sites that point an MX or a forwarder at kefu, and kefu's mail sent
over SMTP. Every message received is in KEFU_INTAKE (acked) before the mailbox is marked or the
SMTP client hears `250`."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aioimaplib
import aiosmtplib
import nats.js.errors
from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.js.kv import KeyValue

from shared.contract.models import OutboundMessage

from .clients import Sent
from .domain.mail import MailboxState, fetched, new_uids, outgoing, resume

log = logging.getLogger("kefu.gateway.mail")
Store = Callable[[bytes, str], Awaitable[None]]  # (raw message, dedup key) -> stored in KEFU_INTAKE
BATCH = 50
IDLE_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:40]


class ImapFollower:
    """Reads a folder from where it left off (its UIDVALIDITY and last UID in KV, written with a
    revision check after the messages are stored), marks what it stored (a keyword and \\Seen, or
    a move to another folder), then waits with IDLE (or `poll` seconds) for more."""

    def __init__(self, *, host: str, port: int, tls: bool, user: str, password: str, folder: str, processed: str,
                 poll: float, bucket: KeyValue, store: Store, timeout: float = 30) -> None:
        self.host, self.port, self.tls, self.user, self.password = host, port, tls, user, password
        self.folder, self.processed, self.poll, self.bucket, self.store, self.timeout = \
            folder, processed, poll, bucket, store, timeout
        self.key = "imap." + hashlib.sha256(f"{host}|{port}|{user}|{folder}".encode()).hexdigest()[:32]
        self.connected = asyncio.Event()

    async def run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.session()
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the server away, a login refused: try again later
                self.connected.clear()
                log.warning("IMAP session ended", extra={"error": repr(exc)[:300], "retry_in": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)

    async def session(self) -> None:
        client = (aioimaplib.IMAP4_SSL(host=self.host, port=self.port, timeout=self.timeout,
                                       ssl_context=ssl.create_default_context())
                  if self.tls else aioimaplib.IMAP4(host=self.host, port=self.port, timeout=self.timeout))
        await client.wait_hello_from_server()
        try:
            login = await client.login(self.user, self.password)
            if login.result != "OK":
                raise RuntimeError(f"IMAP login refused: {login.lines[-1:]!r}")
            if self.processed.startswith("move:"):  # the folder read mail goes to: made if missing
                await client.create(self.processed.removeprefix("move:"))  # "already exists" is fine
            selected = await client.select(self.folder)
            if selected.result != "OK":
                raise RuntimeError(f"cannot select {self.folder!r}: {selected.lines[-1:]!r}")
            uidvalidity = next(int(line.split()[2].rstrip(b"]")) for line in selected.lines if b"UIDVALIDITY" in line)
            self.connected.set()
            while True:
                while await self.read(client, uidvalidity):
                    pass
                await self.wait(client)
        finally:
            try:
                await client.logout()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass

    async def state(self) -> tuple[MailboxState | None, int | None]:
        try:
            entry = await self.bucket.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            return None, None
        return (MailboxState.model_validate_json(entry.value) if entry.value else None), entry.revision

    async def read(self, client: Any, uidvalidity: int) -> bool:
        """Store the next batch of new messages; True when there may be more."""
        saved, revision = await self.state()
        state = resume(saved, uidvalidity)
        found = await client.uid_search("UID", f"{state.last_uid + 1}:*")
        uids = new_uids(found.lines[:-1], state, limit=BATCH)
        if not uids:
            return False
        answer = await client.uid("fetch", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
        messages = fetched(answer.lines)
        for uid in uids:
            raw = messages.get(uid)
            if raw is not None:
                await self.store(raw, digest(raw))  # acked by JetStream before anything is marked
                await self.mark(client, uid)
            state = state.model_copy(update={"last_uid": uid})
        value = state.model_dump_json().encode()
        if revision is None:
            await self.bucket.create(self.key, value)
        else:
            await self.bucket.update(self.key, value, last=revision)  # one reader per mailbox: a conflict is a bug
        return len(uids) == BATCH

    async def mark(self, client: Any, uid: int) -> None:
        """Stored mail marked as such; a mark refused is logged (the place in KV still moves on:
        nothing is read twice, the mail just stays where it was)."""
        if self.processed.startswith("move:"):
            answer = await client.uid("move", str(uid), self.processed.removeprefix("move:"))
        else:
            answer = await client.uid("store", str(uid), "+FLAGS", "(\\Seen $KefuProcessed)")
        if answer.result != "OK":
            log.warning("stored mail not marked", extra={"uid": uid, "answer": repr(answer.lines[-1:])[:200]})

    async def wait(self, client: Any) -> None:
        if not client.has_capability("IDLE"):
            await asyncio.sleep(self.poll)
            return
        idle = await client.idle_start(timeout=IDLE_SECONDS)
        try:
            while True:
                push = await client.wait_server_push(timeout=min(self.poll, IDLE_SECONDS))
                if any(b"EXISTS" in line for line in getattr(push, "lines", push) if isinstance(line, bytes)):
                    break
                if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
        except TimeoutError:
            pass
        finally:
            client.idle_done()
            await asyncio.wait_for(idle, self.timeout)


class SmtpIntake:
    """aiosmtpd's handler: mail for the accepted domains is stored, then answered 250; anything
    larger than the limit is refused by aiosmtpd (552) before it is read whole."""

    def __init__(self, store: Store, *, domains: set[str]) -> None:
        self.store, self.domains = store, {d.lower() for d in domains}

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(">")
        if self.domains and domain not in self.domains:
            return "550 5.7.1 not a mailbox of this service"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        try:
            await self.store(data, digest(data))
        except ValueError as exc:  # the mail itself cannot be kept (its text alone too large): for good
            log.warning("mail refused", extra={"error": repr(exc)[:300]})
            return "552 5.3.4 message too large to keep"
        except Exception as exc:  # noqa: BLE001 - not stored: the sender must keep it and try again
            log.warning("mail not stored; answered 451", extra={"error": repr(exc)[:300]})
            return "451 4.3.0 not stored now; try again later"
        return "250 2.0.0 stored"


class SmtpSender:
    """kefu's mail through the site's SMTP relay. 4xx and connection failures: try again later;
    5xx: refused for good."""

    def __init__(self, *, host: str, port: int, user: str, password: str, starttls: bool, sender: str,
                 sender_name: str, timeout: float) -> None:
        self.host, self.port, self.user, self.password, self.starttls = host, port, user, password, starttls
        self.sender, self.sender_name, self.timeout = sender, sender_name, timeout

    async def send(self, msg: OutboundMessage) -> Sent:
        mail = outgoing(msg, sender=self.sender, sender_name=self.sender_name)
        try:
            await aiosmtplib.send(mail, hostname=self.host, port=self.port, username=self.user or None,
                                  password=self.password or None, start_tls=self.starttls, timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [r.code for r in refused.recipients]
            if codes and all(400 <= c < 500 for c in codes):
                return Sent("retry", "platform_busy", str(refused)[:300])
            return Sent("refused", "refused", str(refused)[:300])
        except aiosmtplib.SMTPResponseException as exc:
            return Sent("retry" if 400 <= exc.code < 500 else "refused",
                        "platform_busy" if 400 <= exc.code < 500 else "refused", f"{exc.code} {exc.message}"[:300])
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Sent("retry", "platform_unavailable", repr(exc)[:300])
        return Sent("sent", platform_id=mail["Message-ID"])
