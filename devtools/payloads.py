"""One realistic payload per channel, in the channel's own format, with a chosen source id."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from shared.contract.enums import Channel

CONTENT_TYPES = {
    Channel.phone: "application/json",
    Channel.sms: "application/x-www-form-urlencoded",
    Channel.email: "message/rfc822",
    Channel.web: "application/json",
    Channel.wechat: "application/xml",
    Channel.app: "application/json",
    Channel.walkin: "application/json",
}


DEFAULT_CONTACT = "13900001111"


def payload(channel: Channel, source_id: str, text: str | None = None, contact: str = DEFAULT_CONTACT,
            id_number: str | None = "110105199001011234") -> bytes:
    """A payload in the channel's own format. `contact` is the phone number where the channel has
    one; for e-mail, WeChat and the app a contact other than the default gives an address / OpenID /
    user of its own, so that loads of many customers are many customers on every channel. `id_number`: the
    identity number a walk-in form carries (None: the form has none)."""
    now = datetime.now(UTC).replace(microsecond=0)
    own = contact != DEFAULT_CONTACT
    if channel is Channel.phone:
        return _json({"call_id": source_id, "caller": contact, "called": "4008008888", "started_at": now.isoformat(),
                      "ivr_path": [1, 3], "transcript": text or "你好，我家的冰箱不制冷了，需要上门维修"})
    if channel is Channel.sms:
        from urllib.parse import urlencode

        return urlencode({"MessageSid": source_id, "From": contact, "To": "106900001",
                          "Body": text or "我的宽带断了三天了，一直没人解决，我要投诉"}).encode()
    if channel is Channel.email:
        msg = EmailMessage()
        msg["From"] = f"王芳 <wangfang.{contact}@example.cn>" if own else "王芳 <wangfang@example.cn>"
        msg["To"] = "service@example.cn"
        msg["Subject"] = "咨询发票"
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = f"<{source_id}>"
        msg.set_content(text or "请问上个月的发票什么时候可以开出来？", charset="utf-8")
        return bytes(msg)
    if channel is Channel.web:
        return _json({"form_id": source_id, "name": "Anna", "email": "anna@example.com", "phone": contact,
                      "subject": "Suggestion", "message": text or "It would be great if the app had a dark mode.",
                      "page_url": "https://example.cn/contact"})
    if channel is Channel.wechat:
        return (
            "<xml><ToUserName><![CDATA[gh_3f9e]]></ToUserName>"
            f"<FromUserName><![CDATA[{f'oUpF8u{contact}' if own else 'oUpF8uMuAJO_M2pxb1Q9'}]]>"
            f"</FromUserName><CreateTime>{int(now.timestamp())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text or '热水器冒烟了，还有烧焦的味道'}]]></Content><MsgId>{source_id}</MsgId></xml>"
        ).encode()
    if channel is Channel.app:
        return _json({"event_id": source_id, "user_id": f"u-{contact}" if own else "u-5531", "phone": contact, "app_version": "3.2.1",
                      "text": text or "I can't log in, it keeps saying my password is wrong."})
    return _json({"ticket_no": source_id, "branch": "北京朝阳营业厅", "staff_id": "E1024",
                  "customer": {"name": "赵女士", "phone": contact, **({"id_number": id_number} if id_number else {})},
                  "summary": text or "客户咨询理财产品赎回规则"})


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()
