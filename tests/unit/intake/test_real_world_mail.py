"""The classes of defect real-world payloads showed (issue "Real channels"), each on a message
built to show exactly that class; the public corpus they came from is tests/unit/intake/test_corpus.py.
Each test fails on the parser before its fix."""

from __future__ import annotations

from urllib.parse import urlencode

from services.intake.domain.parsers.email import parse_email
from services.intake.domain.parsers.sms import parse_sms

GBK_SUBJECT = "电饭煲坏了，要求退货".encode("gbk")
GBK_NAME = "王芳".encode("gbk")


def mail(headers: bytes, body: bytes = b"body text\r\n") -> bytes:
    return headers.replace(b"\n", b"\r\n") + b"\r\n" + body


def test_a_text_part_named_in_its_content_type_without_a_disposition_is_the_body(ctx) -> None:
    raw = mail(b"From: a@example.cn\nSubject: s\nMessage-ID: <n1@x>\nMIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=utf-8; name=\"message.txt\"\n",
               "我的订单还没到".encode())
    r = parse_email(raw, ctx)
    assert r.body == "我的订单还没到" and r.attachments == []


def test_a_named_text_part_after_the_body_is_still_an_attachment(ctx) -> None:
    raw = mail(b"From: a@example.cn\nSubject: s\nMessage-ID: <n2@x>\nMIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=b\n",
               b"--b\r\nContent-Type: text/plain\r\n\r\nsee the log\r\n"
               b"--b\r\nContent-Type: text/plain; name=\"app.log\"\r\n\r\nERROR 42\r\n--b--\r\n")
    r = parse_email(raw, ctx)
    assert r.body == "see the log" and [a.name for a in r.attachments] == ["app.log"]


def test_a_large_named_text_part_after_the_body_is_moved_out_like_any_attachment(ctx) -> None:
    """One rule for both sides: the parser lists a named text part after the body as an attachment,
    so `detach` moves it out when large (it kept every text part in the mail before)."""
    from shared.mailparts import detach

    log = b"ERROR 42 " * 20_000
    raw = mail(b"From: a@example.cn\nSubject: s\nMessage-ID: <n3@x>\nMIME-Version: 1.0\n"
               b"Content-Type: multipart/mixed; boundary=b\n",
               b"--b\r\nContent-Type: text/plain; name=\"message.txt\"\r\n\r\nsee the log\r\n"
               b"--b\r\nContent-Type: text/plain; name=\"app.log\"\r\n\r\n" + log + b"\r\n--b--\r\n")
    small, moved = detach(raw, part_limit=1024)
    assert [m.name for m in moved] == ["app.log"] and len(small) < 2048
    r = parse_email(small, ctx)
    assert r.body == "see the log"
    assert [(a.name, a.url) for a in r.attachments] == [("app.log", f"nats-object://kefu_attachments/{moved[0].key}")]


def test_raw_8bit_gbk_in_subject_and_from_decodes_like_the_body(ctx) -> None:
    raw = mail(b"From: " + GBK_NAME + b" <wf@example.cn>\nSubject: " + GBK_SUBJECT + b"\nMessage-ID: <g1@x>\n"
               b"MIME-Version: 1.0\nContent-Type: text/plain; charset=gbk\nContent-Transfer-Encoding: 8bit\n",
               "用了三天就不加热了".encode("gbk"))
    r = parse_email(raw, ctx)
    assert r.subject == "电饭煲坏了，要求退货" and r.contact.name == "王芳"
    assert r.body == "用了三天就不加热了"


def test_raw_8bit_headers_without_a_declared_charset_fall_back_like_bodies(ctx) -> None:
    raw = mail(b"From: " + GBK_NAME + b" <wf@example.cn>\nSubject: " + GBK_SUBJECT + b"\nMessage-ID: <g2@x>\n",
               "没有声明字符集".encode("gbk"))
    r = parse_email(raw, ctx)
    assert r.subject == "电饭煲坏了，要求退货" and "\ufffd" not in (r.contact.name or "")


def test_one_malformed_header_line_does_not_end_the_headers(ctx) -> None:
    raw = mail(b"Received: by mx.example.cn\nquite Delivered-To: x@example.cn\nFrom: Li <li@example.cn>\n"
               b"Subject: refund\nMessage-ID: <m1@x>\n", b"please refund\r\n")
    r = parse_email(raw, ctx)
    assert (r.contact.email, r.subject, r.body) == ("li@example.cn", "refund", "please refund")


def test_an_indented_first_header_is_still_a_header(ctx) -> None:
    r = parse_email(mail(b" From: James <james@example.cn>\nSubject: plain text\nMessage-ID: <i1@x>\n"), ctx)
    assert (r.contact.email, r.subject) == ("james@example.cn", "plain text")


def test_obsolete_spaces_before_the_colon_are_headers(ctx) -> None:
    raw = mail(b"From  : John Doe <jdoe@machine.example>\nSubject     : Saying Hello\nMessage-ID  : <o1@x>\n",
               b"hello\r\n")
    r = parse_email(raw, ctx)
    assert (r.contact.email, r.subject, r.source_id) == ("jdoe@machine.example", "Saying Hello", "o1@x")


def test_a_body_that_merely_follows_headers_without_a_blank_line_is_not_taken_for_headers(ctx) -> None:
    raw = b"From: a@example.cn\r\nSubject: s\r\nMessage-ID: <b1@x>\r\nthis line is the body\r\n"
    r = parse_email(raw, ctx)
    assert r.body == "this line is the body" and r.subject == "s"


def test_a_quoted_local_part_is_a_sender(ctx) -> None:
    for sender in (b'"Big Bug bb"@bug.com', b'<"Big Bug bb"@bug.com>', b'Big Bug <"Big Bug bb"@bug.com>'):
        r = parse_email(mail(b"From: " + sender + b"\nSubject: s\nMessage-ID: <q@x>\n"), ctx)
        assert r.contact.email == '"big bug bb"@bug.com'


def test_an_unquoted_name_with_an_at_or_without_angle_brackets_still_gives_the_address(ctx) -> None:
    r = parse_email(mail(b"From: jang.abcdef@xyzlinu <jang.abcdef@xyzlinux12345678.it>\nSubject: s\nMessage-ID: <u@x>\n"),
                    ctx)
    assert r.contact.email == "jang.abcdef@xyzlinux12345678.it"
    # Python's email package reads these as one quoted mailbox ("Big Bug bb"@bug.com): the address
    # is the last word, as mail clients that write such headers mean it
    r = parse_email(mail(b"From: Big Bug bb@bug.com\nSubject: s\nMessage-ID: <u2@x>\n"), ctx)
    assert r.contact.email == "bb@bug.com" and r.contact.name == "Big Bug"
    r = parse_email(mail(b"From: =?utf-8?b?5p2O5piO?= li.ming@example.cn (via web)\nSubject: s\nMessage-ID: <u3@x>\n"), ctx)
    assert r.contact.email == "li.ming@example.cn" and r.contact.name == "李明"


def test_charset_aliases_python_does_not_know(ctx) -> None:
    for charset, text in (("iso-8859-8-i", "שלום"), ("ks_c_5601-1987", "안녕하세요"), ("x-mac-roman", "café")):
        encoded = text.encode({"iso-8859-8-i": "iso-8859-8", "ks_c_5601-1987": "cp949", "x-mac-roman": "mac_roman"}[charset])
        raw = mail(b"From: a@example.cn\nSubject: s\nMessage-ID: <c@x>\nMIME-Version: 1.0\n"
                   b"Content-Type: text/plain; charset=" + charset.encode() + b"\nContent-Transfer-Encoding: 8bit\n", encoded)
        assert parse_email(raw, ctx).body == text, charset


def test_what_mail_stores_put_before_a_message_is_not_the_message(ctx) -> None:
    headers = b"From: a@example.cn\nSubject: envelope\nMessage-ID: <e@x>\n"
    for prefix in (b"\xef\xbb\xbf", b"From a@example.cn Wed Apr 27 14:15:31 2005\n", b"\xef\xbb\xbfFrom -\n"):
        r = parse_email(prefix + mail(headers), ctx)
        assert (r.subject, r.contact.email) == ("envelope", "a@example.cn"), prefix


def test_a_bounce_without_a_from_is_a_machines_message_not_a_rejection(ctx) -> None:
    raw = mail(b"Return-Path: <>\nSubject: Mail delivery failed\nContent-Type: multipart/report; "
               b"report-type=delivery-status; boundary=b\n",
               b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
               b"Final-Recipient: rfc822; x@example.cn\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n")
    r = parse_email(raw, ctx)
    assert r.thread.auto and r.contact.email is None


# -- SMS ----------------------------------------------------------------------------------------
def sms(**fields: str) -> bytes:
    return urlencode({"MessageSid": "SM1", "To": "+861069000000", **fields}).encode()


def test_a_whatsapp_or_alphanumeric_sender_is_not_made_a_phone_number(ctx) -> None:
    for sender, via in (("whatsapp:+14155238886", "whatsapp"), ("messenger:123456789012345", "messenger"),
                        ("KEFU", "sender_id")):
        r = parse_sms(sms(From=sender, Body="hi"), ctx)
        assert r.contact.phone is None and r.channel_meta["sender"] == sender and r.channel_meta["via"] == via
    assert parse_sms(sms(From="tel:+8613800138000", Body="hi"), ctx).contact.phone == "+8613800138000"


def test_a_picture_only_mms_is_a_request_with_its_media(ctx) -> None:
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    r = parse_sms(sms(From="+8613800138000", Body="", NumMedia="2", MediaUrl0=url, MediaContentType0="image/jpeg",
                      MediaUrl1="javascript:alert(1)", MediaContentType1="image/png"), ctx)
    assert r.body == "" and [(a.url, a.content_type) for a in r.attachments] == [(url, "image/jpeg")]
