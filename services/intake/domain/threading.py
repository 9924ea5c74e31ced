"""Which conversation a customer message belongs to: a pure decision over the sender's own recent
requests (docs/conversations.md).

Every message has at most one *sender key*: the contact its channel proves (the mail's From, the
SMS number, the WeChat openid, the app user) or the web chat's session. The requests a message can
continue are only those kept under that key, so a message is never attached to another sender's
request, whatever Message-ID or reference it names: `decide` only ever answers with a request found
in `threads`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from shared.contract.conversation import MatchedBy, refs_in, request_named, short_ref
from shared.contract.enums import Channel
from shared.privacy import contact_key

from .canonical import request_id_for
from .model import ParsedRequest

MAX_THREADS = 20  # requests kept per sender, newest first
MAX_CLAIMS = 20  # decisions kept per sender (a redelivery after a crash finds its own)
MAX_MESSAGE_IDS = 20  # the customer's own Message-IDs kept per request
CONTACT_KINDS = {Channel.sms: "phone", Channel.phone: "phone", Channel.wechat: "wechat", Channel.app: "app",
                 Channel.walkin: "phone", Channel.email: "email"}


class ThreadRef(BaseModel):
    """One of the sender's requests, as intake knows it."""

    request_id: str
    ref: str
    channel: Channel
    state: Literal["open", "closed"] = "open"
    last_activity: AwareDatetime
    lines: int = Field(0, description="Web chat: the visitor's lines taken so far.")
    message_ids: list[str] = Field(default_factory=list, description="Hashes of the customer's own Message-IDs.")


class Claim(BaseModel):
    """A decision made for one message, kept so that its redelivery carries it out again unchanged."""

    key: str
    request_id: str
    kind: Literal["new", "append"]
    matched_by: MatchedBy | None = None
    follow_up_of: str | None = None
    from_line: int = 0


class SenderThreads(BaseModel):
    threads: list[ThreadRef] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)


@dataclass(frozen=True)
class Incoming:
    """A message, as far as threading needs it."""

    channel: Channel
    key: str  # the message's own dedup key (source id; `<session>#<lines>` for web chat)
    source_id: str
    text: str  # subject and body, for references
    references: tuple[str, ...] = ()
    lines: int | None = None  # web chat: visitor lines in this transcript
    auto: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Policy:
    windows: dict[Channel, timedelta]  # channels threaded by contact, each with its conversation window


@dataclass(frozen=True)
class New:
    follow_up_of: str | None = None
    kind: Literal["new"] = "new"


@dataclass(frozen=True)
class Append:
    request_id: str
    matched_by: MatchedBy
    from_line: int = 0
    kind: Literal["append"] = "append"


@dataclass(frozen=True)
class Ignore:
    reason: str
    detail: str
    kind: Literal["ignore"] = "ignore"


@dataclass(frozen=True)
class Seen:
    """A web chat transcript with no line that was not taken already."""

    request_id: str
    kind: Literal["seen"] = "seen"


Decision = New | Append | Ignore | Seen


def hashed_id(message_id: str) -> str:
    return hashlib.sha256(message_id.strip("<> ").encode()).hexdigest()[:24]


def sender_key(channel: Channel, parsed: ParsedRequest, policy: Policy) -> str | None:
    """The key the sender's requests are kept under, or None when this channel does not thread."""
    if channel is Channel.web:
        if parsed.thread.lines is None:
            return None  # a form: every form is a new request
        return contact_key("session", parsed.source_id)
    if channel is not Channel.email and channel not in policy.windows:
        return None
    c = parsed.contact
    value = {"phone": c.phone, "wechat": c.wechat_openid, "app": c.app_user_id, "email": c.email}[CONTACT_KINDS[channel]]
    return contact_key(CONTACT_KINDS[channel], value) if value else None


def message_key(channel: Channel, parsed: ParsedRequest) -> str:
    """The dedup key of one message: its source id, or for a web chat transcript the session and how
    many visitor lines it holds (a longer transcript of the session is a new message)."""
    if channel is Channel.web and parsed.thread.lines is not None:
        return f"{parsed.source_id}#{len(parsed.thread.lines)}"
    return parsed.source_id


def decide(message: Incoming, threads: SenderThreads | None, policy: Policy, now: datetime) -> Decision:
    """new | append(request, matched_by) | ignore(reason) | seen, from the sender's own requests only."""
    if message.auto:
        return Ignore("auto_generated", message.auto)
    known = threads.threads if threads else []
    if not known:
        return New()
    if message.channel is Channel.web and message.lines is not None:
        return _session(message, known)
    found = _by_reply(message, known) or _by_ref(message, known)
    if found is not None:
        thread, how = found
        return New(follow_up_of=thread.request_id) if thread.state == "closed" else Append(thread.request_id, how)
    window = policy.windows.get(message.channel)
    if window is None:
        return New()
    latest = next((t for t in known if t.channel is message.channel), None)
    if latest is None or now - latest.last_activity > window:
        return New()
    return New(follow_up_of=latest.request_id) if latest.state == "closed" else Append(latest.request_id, "contact")


def _session(message: Incoming, known: list[ThreadRef]) -> Decision:
    thread = known[0]  # a session's key holds that session's request (and its follow-ups after close)
    assert message.lines is not None
    if message.lines <= thread.lines:
        return Seen(thread.request_id)
    if thread.state == "closed":
        return New(follow_up_of=thread.request_id)
    return Append(thread.request_id, "session", from_line=thread.lines)


def _by_reply(message: Incoming, known: list[ThreadRef]) -> tuple[ThreadRef, MatchedBy] | None:
    for mid in message.references:
        named = request_named(mid) or request_id_for(Channel.email, mid.strip("<> "))
        hashed = hashed_id(mid)
        for thread in known:
            if thread.request_id == named or hashed in thread.message_ids:
                return thread, "reply_to"
    return None


def _by_ref(message: Incoming, known: list[ThreadRef]) -> tuple[ThreadRef, MatchedBy] | None:
    refs = refs_in(message.text)
    for thread in known:
        if thread.ref in refs:
            return thread, "ref"
    return None


def claim_for(decision: New | Append, *, key: str, new_request_id: str) -> Claim:
    if isinstance(decision, Append):
        return Claim(key=key, request_id=decision.request_id, kind="append", matched_by=decision.matched_by,
                     from_line=decision.from_line)
    return Claim(key=key, request_id=new_request_id, kind="new", follow_up_of=decision.follow_up_of)


def record(threads: SenderThreads | None, claim: Claim, *, channel: Channel, at: datetime, lines: int | None,
           message_id: str | None) -> SenderThreads:
    """The sender's threads once `claim` is made: a new request first in the list, or the request
    appended to moved first with its last activity, lines and Message-IDs; the claim kept."""
    current = threads or SenderThreads()
    mids = [hashed_id(message_id)] if message_id else []
    existing = next((t for t in current.threads if t.request_id == claim.request_id), None)
    if existing is None:
        thread = ThreadRef(request_id=claim.request_id, ref=short_ref(claim.request_id), channel=channel,
                           last_activity=at, lines=lines or 0, message_ids=mids)
    else:
        thread = existing.model_copy(update={
            "last_activity": max(existing.last_activity, at), "state": "open",
            "lines": max(existing.lines, lines or 0),
            "message_ids": ([*existing.message_ids, *[m for m in mids if m not in existing.message_ids]]
                            [-MAX_MESSAGE_IDS:])})
    others = [t for t in current.threads if t.request_id != claim.request_id]
    claims = [claim, *[c for c in current.claims if c.key != claim.key]]
    return SenderThreads(threads=[thread, *others][:MAX_THREADS], claims=claims[:MAX_CLAIMS])


def claimed(threads: SenderThreads | None, key: str) -> Claim | None:
    return next((c for c in threads.claims if c.key == key), None) if threads else None


def claim_message(current: SenderThreads | None, message: Incoming, policy: Policy, now: datetime, *,
                  message_id: str | None) -> tuple[Claim | Seen, SenderThreads | None]:
    """The whole step over the sender's entry, as intake writes it with a revision check: the claim
    this message has already (a redelivery), else a new decision made a claim; and the entry to
    store (None: unchanged). A follow-up of a closed request is a new request of its own message (a
    chat session's next transcript, a reply), so its id comes from the message's key, not the
    session's. `message_id`: an e-mail's own Message-ID, kept to recognise replies to it."""
    made = claimed(current, message.key)
    if made is None:
        decision = decide(message, current, policy, now)
        if isinstance(decision, Seen):
            return decision, None
        assert not isinstance(decision, Ignore), "machine mail is ignored before threading"
        follow_up = isinstance(decision, New) and decision.follow_up_of is not None
        made = claim_for(decision, key=message.key, new_request_id=request_id_for(
            message.channel, message.key if follow_up else message.source_id))
    elif current is not None and any(t.request_id == made.request_id for t in current.threads):
        return made, None  # decided and recorded by an earlier delivery
    return made, record(current, made, channel=message.channel, at=message.at or now, lines=message.lines,
                        message_id=message_id)


def touched(threads: SenderThreads | None, request_id: str, *, state: Literal["open", "closed"] | None = None,
            at: datetime | None = None) -> SenderThreads | None:
    """The sender's threads after an event about one of their requests (closed, reopened, an agent's
    reply); None when nothing changes."""
    if threads is None:
        return None
    changed = False
    out = []
    for t in threads.threads:
        if t.request_id == request_id:
            update: dict[str, object] = {}
            if state is not None and t.state != state:
                update["state"] = state
            if at is not None and at > t.last_activity:
                update["last_activity"] = at
            if update:
                t = t.model_copy(update=update)
                changed = True
        out.append(t)
    return threads.model_copy(update={"threads": out}) if changed else None


def parse_windows(text: str) -> dict[Channel, timedelta]:
    """`wechat=72h,sms=72h,app=72h` -> windows; `phone=24h` adds a channel; `wechat=0` turns it off."""
    windows: dict[Channel, timedelta] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, value = item.partition("=")
        channel = Channel(name.strip())
        if channel in (Channel.web, Channel.email):
            raise ValueError(f"{channel.value} threads by session or reply, not by a window")
        value = value.strip().lower()
        if not sep or not value:
            raise ValueError(f"{item!r}: expected <channel>=<hours>h")
        hours = float(value.removesuffix("h"))
        if hours > 0:
            windows[channel] = timedelta(hours=hours)
    return windows
