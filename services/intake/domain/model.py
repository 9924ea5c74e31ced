"""What a parser makes of one channel payload, before the customer is looked up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.contract.models import Attachment, Hints


class Contact(BaseModel):
    name: str | None = None
    phone: str | None = None  # normalised (E.164 where possible)
    email: str | None = None  # lower-cased
    wechat_openid: str | None = None
    app_user_id: str | None = None

    def lookup_keys(self) -> list[tuple[str, str]]:
        """(kind, value) pairs to look up, most specific first."""
        pairs = [
            ("phone", self.phone),
            ("email", self.email),
            ("wechat", self.wechat_openid),
            ("app", self.app_user_id),
        ]
        return [(k, v) for k, v in pairs if v]


class ThreadHints(BaseModel):
    """What a payload says about the conversation it belongs to (docs/conversations.md)."""

    references: list[str] = Field(default_factory=list, description="Message-IDs it answers: In-Reply-To "
                                  "first, then References newest first (e-mail).")
    auto: str | None = Field(None, description="Why it was written by a machine (autoreply.py), if it was.")
    bounced: list[str] = Field(default_factory=list, description="Message-IDs a delivery report returns.")
    lines: list[str] | None = Field(None, description="Web chat: the visitor's lines, in order.")


class ParsedRequest(BaseModel):
    source_id: str
    received_at: datetime | None = None  # the payload's own time, timezone-aware; None if it has none
    contact: Contact = Field(default_factory=Contact)
    subject: str | None = None
    body: str
    hints: Hints = Field(default_factory=Hints)
    attachments: list[Attachment] = Field(default_factory=list)
    channel_meta: dict[str, Any] = Field(default_factory=dict)
    attested: list[str] = Field(default_factory=list, description="Contact kinds the payload vouches for: a "
                                "portal's or app's `verified`, or `email` after a trusted DMARC pass (identity.py).")
    thread: ThreadHints = Field(default_factory=ThreadHints)
