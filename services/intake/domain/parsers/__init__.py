"""One parser per channel: raw bytes as the channel delivers them -> ParsedRequest or a Rejection."""

from __future__ import annotations

from collections.abc import Callable

from shared.contract.enums import Channel

from ..errors import UnknownChannel, UnsupportedMediaType
from ..model import ParsedRequest
from .app import parse_app
from .common import ParseContext
from .email import parse_email
from .phone import parse_phone
from .sms import parse_sms
from .walkin import parse_walkin
from .web import parse_web
from .wechat import parse_wechat

Parser = Callable[[bytes, ParseContext], ParsedRequest]

PARSERS: dict[Channel, Parser] = {
    Channel.phone: parse_phone,
    Channel.sms: parse_sms,
    Channel.email: parse_email,
    Channel.web: parse_web,
    Channel.wechat: parse_wechat,
    Channel.app: parse_app,
    Channel.walkin: parse_walkin,
}

JSON = ("application/json",)
# The media types each channel's HTTP intake accepts (a missing Content-Type is accepted).
MEDIA_TYPES: dict[Channel, tuple[str, ...]] = {
    Channel.phone: JSON,
    Channel.sms: ("application/x-www-form-urlencoded",),
    Channel.email: ("message/rfc822", "text/plain", "application/octet-stream"),
    Channel.web: JSON,
    Channel.wechat: ("application/xml", "text/xml"),
    Channel.app: JSON,
    Channel.walkin: JSON,
}


def channel_of(name: str) -> Channel:
    try:
        return Channel(name)
    except ValueError:
        raise UnknownChannel(
            f"unknown channel {name[:40]!r}; expected one of {', '.join(c.value for c in Channel)}"
        ) from None


def check_media_type(channel: Channel, content_type: str | None) -> None:
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES[channel]:
        raise UnsupportedMediaType(
            f"{channel.value} payloads are {' or '.join(MEDIA_TYPES[channel])}, not {media[:60]}"
        )


def parse(channel: Channel, raw: bytes, ctx: ParseContext) -> ParsedRequest:
    return PARSERS[channel](raw, ctx)


__all__ = ["MEDIA_TYPES", "PARSERS", "ParseContext", "channel_of", "check_media_type", "parse"]
