"""WeChat official-account XML pushes, parsed with defusedxml only (no entities, no DTDs)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from shared.contract.models import Attachment

from ..errors import MissingContent, NotARequest, UnparseablePayload
from ..model import Contact, ParsedRequest
from ..text import normalise_whitespace, one_line
from .common import ParseContext, from_unix, require_id

WHAT = "wechat xml"
MEDIA_TYPES = {"image", "video", "shortvideo", "file"}


def parse_wechat(raw: bytes, ctx: ParseContext) -> ParsedRequest:
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise UnparseablePayload(f"{WHAT} refused: {type(exc).__name__} (DTDs and entities are not allowed)") from exc
    except (ParseError, ValueError) as exc:
        raise UnparseablePayload(f"{WHAT} is not well-formed: {exc}") from exc

    def text(tag: str) -> str | None:
        node: Element | None = root.find(tag)
        return node.text.strip() if node is not None and node.text and node.text.strip() else None

    msg_type = (text("MsgType") or "").lower()
    if not msg_type:
        raise MissingContent(f"{WHAT} lacks MsgType")
    openid = text("FromUserName")
    if msg_type == "event":
        raise NotARequest(f"wechat event push ({one_line(text('Event'), 40) or 'unknown'}) is not a request")
    if msg_type.startswith("device_"):  # WeChat's hardware platform: a device's data, not a person writing
        raise NotARequest(f"wechat {one_line(msg_type, 40)} push (a device's message) is not a request")
    if not openid:
        raise MissingContent(f"{WHAT} lacks FromUserName")

    attachments: list[Attachment] = []
    if msg_type == "text":
        body = text("Content")
    elif msg_type == "voice":
        body = text("Recognition")
        if not body:
            attachments.append(Attachment(name=text("MediaId"), content_type=f"audio/{text('Format') or 'amr'}"))
    elif msg_type in MEDIA_TYPES:
        body = None
        attachments.append(Attachment(name=text("MediaId"), content_type=msg_type, url=text("PicUrl")))
    elif msg_type == "location":
        body = text("Label")
    elif msg_type == "link":
        body = "\n".join(t for t in (text("Title"), text("Description"), text("Url")) if t)
    else:
        raise UnparseablePayload(f"{WHAT} has unsupported MsgType {one_line(msg_type, 40)!r}")

    body = normalise_whitespace(body or "")
    if not body and not attachments:
        raise MissingContent(f"{WHAT} {msg_type} message has no content")
    return ParsedRequest(
        source_id=require_id(text("MsgId"), "MsgId", WHAT),
        received_at=from_unix(text("CreateTime"), ctx),
        contact=Contact(wechat_openid=require_id(openid, "FromUserName", WHAT)),
        body=body,
        attachments=attachments,
        channel_meta={"msg_type": msg_type, "to_user": one_line(text("ToUserName"), 64)},
    )
