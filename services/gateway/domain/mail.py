"""Mail at the gateway, pure: what a mailbox has been read up to (IMAP UIDVALIDITY and UID), which
messages of a search are new, and the message kefu sends for an outbound message (its thread's
Message-ID, In-Reply-To, References and subject; Auto-Submitted on what kefu writes by itself)."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from pydantic import BaseModel

from shared.contract.models import OutboundMessage


class MailboxState(BaseModel):
    """How far a mailbox folder has been read: UIDs are only meaningful with their UIDVALIDITY."""

    uidvalidity: int
    last_uid: int = 0


def resume(state: MailboxState | None, uidvalidity: int) -> MailboxState:
    """Where to read on from. A new UIDVALIDITY (the folder was recreated, or the server renumbered
    it) starts over: intake drops what it has already made requests of by Message-ID, and the
    stream by the raw bytes' digest, so nothing is made twice."""
    if state is None or state.uidvalidity != uidvalidity:
        return MailboxState(uidvalidity=uidvalidity)
    return state


def new_uids(found: list[bytes], state: MailboxState, *, limit: int) -> list[int]:
    """The UIDs of a `UID SEARCH` answer above the last one read, oldest first (an IMAP range `n:*`
    always includes the highest UID, even below n)."""
    uids = sorted({int(token) for line in found for token in line.split() if token.isdigit()})
    return [uid for uid in uids if uid > state.last_uid][:limit]


_FETCHED = re.compile(rb"UID (\d+) (?:BODY|RFC822)")


def fetched(lines: list[bytes | bytearray]) -> dict[int, bytes]:
    """A `UID FETCH (UID BODY.PEEK[])` answer as {uid: the raw message}."""
    found: dict[int, bytes] = {}
    for i, line in enumerate(lines):
        match = _FETCHED.search(bytes(line)) if isinstance(line, bytes) else None
        if match and i + 1 < len(lines) and isinstance(lines[i + 1], bytearray):
            found[int(match.group(1))] = bytes(lines[i + 1])
    return found


def outgoing(msg: OutboundMessage, *, sender: str, sender_name: str = "") -> EmailMessage:
    """The mail for an outbound message to an e-mail customer, in its thread."""
    mail = EmailMessage()
    mail["From"] = formataddr((sender_name, sender)) if sender_name else sender
    mail["To"] = msg.to["email"]
    thread = msg.thread
    mail["Subject"] = thread.subject if thread else "Re: your request"
    if thread:
        mail["Message-ID"] = f"<{thread.message_id.strip('<>')}>"
        if thread.in_reply_to:
            mail["In-Reply-To"] = f"<{thread.in_reply_to.strip('<>')}>"
        if thread.references:
            mail["References"] = " ".join(f"<{r.strip('<>')}>" for r in thread.references)
    mail["Date"] = format_datetime(msg.occurred_at)
    if msg.automatic:  # RFC 3834: a well-behaved responder on the other side does not answer it
        mail["Auto-Submitted"] = "auto-replied"
    mail.set_content(msg.text, charset="utf-8")
    return mail
