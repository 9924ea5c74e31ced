"""Is a customer's message a survey answer? A bare rating: "4", "５", "4分", "满意", "very satisfied"."""

from __future__ import annotations

import re
import unicodedata

from shared.contract.enums import Channel

from .model import ParsedRequest

WORDS = {
    "非常满意": 5, "很满意": 5, "满意": 4, "还行": 3, "一般": 3, "不满意": 2, "不太满意": 2, "很不满意": 1,
    "非常不满意": 1, "好评": 5, "差评": 1,
    "very satisfied": 5, "satisfied": 4, "neutral": 3, "ok": 3, "okay": 3, "dissatisfied": 2,
    "unsatisfied": 2, "not satisfied": 2, "very dissatisfied": 1, "very unsatisfied": 1,
}
_NUMBER = re.compile(r"^([1-5])\s*(分|星|stars?|/\s*5)?$")
_TRAILING = re.compile(r"[\s。.!！~～]+$")
MAX_LENGTH = 20
REPLY_CHANNELS = {Channel.sms: "phone", Channel.wechat: "wechat"}


def rating_of(text: str) -> int | None:
    """The rating a short reply gives, or None when the message is anything else."""
    if len(text) > MAX_LENGTH:
        return None
    cleaned = _TRAILING.sub("", unicodedata.normalize("NFKC", text).strip().lower())
    if match := _NUMBER.match(cleaned):
        return int(match.group(1))
    return WORDS.get(cleaned)


def reply_contact(channel: Channel, parsed: ParsedRequest) -> tuple[str, str] | None:
    """The (kind, value) a survey reply on this channel comes from: SMS by phone, WeChat by openid."""
    kind = REPLY_CHANNELS.get(channel)
    value = {"phone": parsed.contact.phone, "wechat": parsed.contact.wechat_openid}.get(kind or "")
    return (kind, value) if kind and value else None
