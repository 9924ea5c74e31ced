"""Large mail made to fit a NATS message: the bytes of its large attachments moved out to an
object store, each part left in place with a reference, the text kept as it came. Pure: bytes in,
bytes and the detached parts out; the edges (intake's HTTP, the gateway's IMAP and SMTP) store
the parts in `kefu_attachments` before they publish the mail."""

from __future__ import annotations

import email
import hashlib
from dataclasses import dataclass
from email import policy
from email.message import Message

HEADER = "X-Kefu-Detached"  # "<sha256>; size=<bytes>": the part's content is in kefu_attachments/<sha256>
BUCKET = "kefu_attachments"
PART_LIMIT = 64 * 1024  # a non-text part above this is moved out (when the whole mail is too large)
MAX_PARTS = 200


@dataclass(frozen=True)
class Detached:
    key: str  # the content's SHA-256: the object's name (the same file twice is stored once)
    data: bytes
    content_type: str
    name: str | None


def is_attachment(part: Message, *, filename: str | None, body_seen: bool) -> bool:
    """The one rule for what in a mail is an attachment, which intake's parser lists and `detach`
    moves out when large: a part sent as an attachment, anything not text, and a named part not
    sent inline, except a named text part before any body text (Outlook and some webmail write the
    body so). `body_seen`: a text part of the body came before this one."""
    ctype = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    named_text = bool(filename) and not disposition and ctype in ("text/plain", "text/html") and not body_seen
    return (disposition == "attachment" or (bool(filename) and disposition != "inline" and not named_text)
            or not ctype.startswith("text/"))


def detach(raw: bytes, *, part_limit: int = PART_LIMIT) -> tuple[bytes, list[Detached]]:
    """The mail with every attachment (`is_attachment`) larger than `part_limit` emptied and marked
    with `X-Kefu-Detached`, and those parts' bytes. The mail is serialised again (only when
    something was moved out), its headers and text unchanged."""
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    moved: list[Detached] = []
    body_seen = False
    for count, part in enumerate(msg.walk()):
        if count > MAX_PARTS:
            break
        if part.is_multipart():
            continue
        if not is_attachment(part, filename=_name(part), body_seen=body_seen):
            body_seen = True
            continue
        data = _content(part)
        if len(data) <= part_limit:
            continue
        key = hashlib.sha256(data).hexdigest()
        moved.append(Detached(key, data, part.get_content_type(), _name(part)))
        _empty(part, f"{key}; size={len(data)}")
    if not moved:
        return raw, []
    return msg.as_bytes(policy=policy.compat32), moved


def reference(part: Message) -> tuple[str, int] | None:
    """(object name, size) of a part `detach` emptied, else None."""
    value = part.get(HEADER)
    if not value:
        return None
    key, _, size = " ".join(str(value).split()).partition("; size=")
    if len(key) != 64 or not size.isdigit():
        return None
    return key, int(size)


def _content(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - an undecodable part is kept as it is
        return b""
    return data if isinstance(data, bytes) else b""


def _name(part: Message) -> str | None:
    try:
        return part.get_filename()
    except Exception:  # noqa: BLE001
        return None


def _empty(part: Message, marker: str) -> None:
    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = "7bit"
    part[HEADER] = marker
    part.set_payload("")
