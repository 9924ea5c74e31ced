from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.intake.domain.errors import MissingContent, UnparseablePayload
from services.intake.domain.parsers.email import parse_email
from tests.unit.intake.conftest import sample

CST = timezone(timedelta(hours=8))


def test_gbk_foxmail_mail_decodes_headers_and_prefers_the_plain_part(ctx) -> None:
    r = parse_email(sample("email", "gbk_foxmail_alternative.eml"), ctx)
    assert r.contact.name == "王芳"
    assert r.contact.email == "wangfang88@163.com"  # case-insensitive
    assert r.subject == "电饭煲质量问题，要求退货"
    assert "用了三天就坏了" in r.body and "<p>" not in r.body
    assert r.source_id == "202611182114047628821@163.com"
    assert r.received_at == datetime(2026, 11, 18, 21, 14, 5, tzinfo=CST)


def test_gb2312_declared_body_with_gbk_only_characters_loses_nothing(ctx) -> None:
    r = parse_email(sample("email", "gb2312_declared_gbk_chars.eml"), ctx)
    assert "朱镕" in r.body and "张喆" in r.body
    assert "\ufffd" not in r.body
    assert r.subject == "投诉"


def test_big5_html_only_mail_becomes_text_without_script_or_style(ctx) -> None:
    r = parse_email(sample("email", "big5_html_only.eml"), ctx)
    assert r.contact.name == "陳先生"
    assert r.subject == "保固期詢問"
    assert "請問貴公司的產品保固期是多久？ 謝謝！" in r.body
    assert "alert" not in r.body and "color" not in r.body


def test_attachment_is_kept_as_metadata_with_rfc2231_name(ctx) -> None:
    r = parse_email(sample("email", "utf8_mixed_attachment.eml"), ctx)
    assert r.body == "请问上个月的发票什么时候可以开出来？附件是订单截图。"
    assert len(r.attachments) == 1
    att = r.attachments[0]
    assert att.name == "发票.pdf" and att.content_type == "application/pdf" and att.size == 28 * 20


def test_missing_date_and_message_id_fall_back_to_intake_time_and_content_hash(ctx) -> None:
    raw = sample("email", "no_date_no_message_id.eml")
    r = parse_email(raw, ctx)
    assert r.received_at is None
    assert r.source_id.startswith("sha256:")
    assert parse_email(raw, ctx).source_id == r.source_id  # a re-delivery is the same request


def test_unparseable_date_is_ignored(ctx) -> None:
    r = parse_email(sample("email", "odd_date.eml"), ctx)
    assert r.received_at is None
    assert r.source_id == "odd-date@example.com"


def test_undeclared_8bit_utf8_body(ctx) -> None:
    r = parse_email(sample("email", "undeclared_8bit_utf8.eml"), ctx)
    assert r.body == "网站登录不上，一直提示验证码错误。"


def test_outlook_html_qp_with_entities_and_inline_image(ctx) -> None:
    r = parse_email(sample("email", "outlook_html_qp.eml"), ctx)
    assert r.contact.email == "anna.smith@example.com"
    assert r.contact.name == "Smith, Anna"
    assert "rude staff member at your branch & the manager who ignored me" in r.body
    assert [a.name for a in r.attachments] == ["image001.png"]


def test_subject_only_mail_uses_subject_as_body(ctx) -> None:
    r = parse_email(sample("email", "subject_only.eml"), ctx)
    assert r.body == r.subject == "请回电 13900001111"


def test_future_date_is_not_trusted(ctx) -> None:
    raw = b"From: a@b.cn\r\nDate: Fri, 01 Jan 2100 00:00:00 +0000\r\nSubject: hi\r\n\r\nhello"
    assert parse_email(raw, ctx).received_at is None


def test_naive_minus_zero_date_is_utc(ctx) -> None:
    raw = b"From: a@b.cn\r\nDate: Mon, 23 Nov 2026 10:00:00 -0000\r\nSubject: hi\r\n\r\nhello"
    assert parse_email(raw, ctx).received_at == datetime(2026, 11, 23, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", UnparseablePayload),
        (b"just some text without headers", UnparseablePayload),
        (b"Subject: no sender\r\n\r\nhello", MissingContent),
        (b"From: a@b.cn\r\nSubject: \r\n\r\n", MissingContent),
    ],
)
def test_unusable_mail_is_rejected_with_a_reason(ctx, raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        parse_email(raw, ctx)
    assert info.value.detail


def test_header_injection_in_subject_is_flattened(ctx) -> None:
    raw = "From: a@b.cn\r\nSubject: =?utf-8?q?hi=0D=0ABcc:_evil@x.com?=\r\n\r\nbody".encode()
    r = parse_email(raw, ctx)
    assert "\n" not in (r.subject or "") and "\r" not in (r.subject or "")
