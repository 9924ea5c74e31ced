"""The business vocabulary of the brief: channels, categories, priorities, tiers."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    phone = "phone"
    sms = "sms"
    email = "email"
    web = "web"
    wechat = "wechat"
    app = "app"
    walkin = "walkin"


CHANNEL_NAMES = frozenset(c.value for c in Channel)


class Category(StrEnum):
    inquiry = "inquiry"
    suggestion = "suggestion"
    complaint = "complaint"
    help = "help"


class Priority(StrEnum):
    urgent = "urgent"
    important = "important"
    normal = "normal"

    @property
    def rank(self) -> int:
        """Higher is more pressing: urgent 2, important 1, normal 0."""
        return {"urgent": 2, "important": 1, "normal": 0}[self.value]


class Tier(StrEnum):
    vip = "vip"
    standard = "standard"
    special_needs = "special_needs"


class Language(StrEnum):
    zh = "zh"
    en = "en"
