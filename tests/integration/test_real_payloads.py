"""Payloads of the kinds real platforms send, through the real intake and routing: a picture-only
MMS and a WhatsApp sender through an SMS gateway become requests (no bogus phone), a bounce with
no From is a machine's message, and the corpus's mail with a broken header line keeps its sender."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contract import subjects as s
from tests.integration.conftest import pipeline
from tests.support.services import ADAPTER_KEY

pytestmark = pytest.mark.integration
CORPUS = Path(__file__).parents[1] / "data" / "corpus" / "email"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_real_platform_payloads_come_through_intake(start, events) -> None:
    media = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    async with pipeline(start) as (intake, _), intake.client(ADAPTER_KEY) as http:
        picture = await http.post("/v1/intake/sms", headers=FORM, content=(
            "MessageSid=MM-real-1&From=%2B8613800138011&To=%2B861069000000&Body=&NumMedia=1"
            f"&MediaUrl0={media.replace(':', '%3A').replace('/', '%2F')}&MediaContentType0=image%2Fjpeg").encode())
        whatsapp = await http.post("/v1/intake/sms", headers=FORM, content=(
            b"MessageSid=SM-real-2&From=whatsapp%3A%2B14155238886&To=whatsapp%3A%2B14155230000&Body=my+order+is+late"))
        stray = await http.post("/v1/intake/email", headers={"Content-Type": "message/rfc822"}, content=(
            CORPUS / "mikel-mail" / "spec__fixtures__emails__plain_emails__raw_email_incorrect_header.eml").read_bytes())
        bounce = await http.post("/v1/intake/email", headers={"Content-Type": "message/rfc822"}, content=(
            CORPUS / "mimekit" / "UnitTests__TestData__messages__delivery-status2.txt").read_bytes())
        received = {e["source_id"]: e for e in await events.wait_for(s.REQUEST_RECEIVED, count=3)}
        await events.wait_for(s.REQUEST_ASSIGNED, count=3)
    assert (picture.status_code, whatsapp.status_code, stray.status_code) == (202, 202, 202), (
        picture.text, whatsapp.text, stray.text)
    assert bounce.status_code == 200 and bounce.json()["status"] == "ignored"
    mms = received["MM-real-1"]
    assert [a["url"] for a in mms["attachments"]] == [media] and mms["customer"]["phone"] == "+8613800138011"
    wa = received["SM-real-2"]
    assert wa["customer"]["phone"] is None and wa["channel_meta"]["via"] == "whatsapp"
    mail = next(e for e in received.values() if e["channel"] == "email")
    assert mail["customer"]["email"] == "xxx@xxx.xxx" and mail["subject"]


async def test_a_mail_with_a_large_attachment_keeps_its_text_and_the_attachment_goes_to_the_object_store(
        start, events, js) -> None:
    import hashlib
    from email.message import EmailMessage

    picture = bytes(range(256)) * 4400  # 1.1 MB: the mail is larger than a NATS message may be
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "li@example.cn", "kf@example.cn", "发票有误", "<big@x>"
    msg.set_content("发票抬头写错了，见截图。")
    msg.add_attachment(picture, maintype="image", subtype="png", filename="截图.png")
    raw = msg.as_bytes()
    async with start["intake"]() as intake, intake.client(ADAPTER_KEY) as http:
        answer = await http.post("/v1/intake/email", content=raw, headers={"Content-Type": "message/rfc822"})
        received = (await events.wait_for(s.REQUEST_RECEIVED, source_id="big@x"))[0]
        kept = await js.get_last_msg(s.STREAM_INTAKE, "kefu.intake.email")
        stored = await (await js.object_store("kefu_attachments")).get(hashlib.sha256(picture).hexdigest())
    assert len(raw) > 1_400_000 and answer.status_code == 202, answer.text
    assert received["body"] == "发票抬头写错了，见截图。"
    key = hashlib.sha256(picture).hexdigest()
    assert received["attachments"] == [{"name": "截图.png", "content_type": "image/png", "size": len(picture),
                                        "url": f"nats-object://kefu_attachments/{key}"}]
    assert stored.data == picture and len(kept.data) < 10_000  # what is kept: the mail without the picture
