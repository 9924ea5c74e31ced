"""Each channel's payload as intake reads it, as JSON Schema: published in intake's OpenAPI
document (the request body of `POST /v1/intake/{channel}`) and in docs/api/intake-payloads.json.
Generated from the parsers' own models, so it says what the code reads. Pure."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.contract.enums import Channel

from .parsers.app import AppPayload
from .parsers.phone import PhonePayload
from .parsers.walkin import VARIANTS, WalkinPayload
from .parsers.web import WebChat, WebForm

UNKNOWN = "Fields not listed are ignored; numbers where text is expected are taken as text."


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic schema with its `$defs` inlined, so that it stands on its own anywhere."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref and ref.startswith("#/$defs/"):
                return resolve(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def _text_or_number(node: Any) -> Any:
    """The parsers take a number where text is expected (ids, digits): say so in the schema."""
    if isinstance(node, dict):
        node = {k: _text_or_number(v) for k, v in node.items()}
        if node.get("type") == "string" and "format" not in node:
            node["type"] = ["string", "number"]
        return node
    if isinstance(node, list):
        return [_text_or_number(v) for v in node]
    return node


def _json(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    schema = _text_or_number(_inline(model.model_json_schema()))
    return schema | {"title": title, "description": f"{description} {UNKNOWN}"}


def payload_schemas() -> dict[Channel, dict[str, Any]]:
    """channel -> {"media_type": ..., "schema": JSON Schema} of what intake reads."""
    variants = "; ".join(f"{field}: {', '.join(names)}" for field, names in VARIANTS.items())
    return {
        Channel.phone: {"media_type": "application/json", "schema": _json(
            PhonePayload, "phone", "From the telephony/IVR bridge; `caller` is the customer's number.")},
        Channel.sms: {"media_type": "application/x-www-form-urlencoded", "schema": {
            "title": "sms", "type": "object", "required": ["MessageSid", "From"],
            "description": f"As SMS gateways post it (Twilio-style names). A message needs a Body or media. {UNKNOWN}",
            "properties": {"MessageSid": {"type": "string", "description": "source id (or SmsSid)"},
                           "SmsSid": {"type": "string"},
                           "From": {"type": "string", "description": "sender: a phone number (or tel:...); another "
                                    "network's id (whatsapp:..., messenger:...) or an alphanumeric sender id is kept "
                                    "as `sender` and is no phone"},
                           "To": {"type": "string"}, "Body": {"type": "string"},
                           "NumMedia": {"type": "string", "description": "MMS: how many MediaUrl<i> follow (at most 10)"},
                           "MediaUrl0": {"type": "string", "description": "MMS: the gateway's URL of medium 0 (1, 2 ...)"},
                           "MediaContentType0": {"type": "string", "description": "MMS: its media type"}}}},
        Channel.email: {"media_type": "message/rfc822", "schema": {
            "title": "email", "type": "string", "format": "binary",
            "description": "The raw RFC 5322 message. Read: From (the sender), Subject, Message-ID (source id), "
                           "Date, To, In-Reply-To, Auto-Submitted, Authentication-Results (docs/security.md#identity), "
                           "the text/plain or else text/html body in any charset, attachments' names and sizes."}},
        Channel.web: {"media_type": "application/json", "schema": {
            "title": "web", "description": "A form (form_id) or a chat transcript (session_id).",
            "oneOf": [_json(WebForm, "web form", "A portal's contact form."),
                      _json(WebChat, "web chat", "A chat transcript; lines from agent/bot/system/staff/operator are "
                            "not the customer's words.")]}},
        Channel.wechat: {"media_type": "text/xml", "schema": {
            "title": "wechat", "type": "object", "xml": {"name": "xml"},
            "required": ["FromUserName", "MsgType", "MsgId"],
            "description": f"The XML the WeChat official-account platform pushes. {UNKNOWN}",
            "properties": {name: {"type": "string"} for name in (
                "ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Recognition",
                "MediaId", "Format", "PicUrl", "Label", "Title", "Description", "Url", "Event")}}},
        Channel.app: {"media_type": "application/json", "schema": _json(
            AppPayload, "app", "From the mobile app; `user_id` is the signed-in user. `verified` lists profile "
            "contacts the app checked (docs/security.md#identity).")},
        Channel.walkin: {"media_type": "application/json", "schema": _json(
            WalkinPayload, "walkin", "From the branch front desk. The customer belongs under `customer`; where a "
            f"desk system puts a field elsewhere it is found under these names, nested or at the top level: "
            f"{variants}.")},
    }
