"""phone, web, app and walk-in JSON; sms form posts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.intake.domain.errors import MissingContent, UnparseablePayload
from services.intake.domain.parsers.app import parse_app
from services.intake.domain.parsers.phone import parse_phone
from services.intake.domain.parsers.sms import parse_sms
from services.intake.domain.parsers.walkin import parse_walkin
from services.intake.domain.parsers.web import parse_web
from shared.contract.enums import Category, Priority

CST = timezone(timedelta(hours=8))


def j(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


# -- phone ---------------------------------------------------------------------------------------
def test_phone_with_transcript_and_notes(ctx) -> None:
    r = parse_phone(j({
        "call_id": "CA-20261124-0001", "caller": "+86 139 0000 1111", "called": "400-800-8888",
        "started_at": "2026-11-24T09:15:00+08:00", "ivr_path": [2, 1], "transcript": "客户：你好，我要投诉",
        "agent_notes": "客户情绪激动，要求主管回电", "customer_name": "李先生", "category": "投诉", "urgency": "high",
    }), ctx)
    assert r.source_id == "CA-20261124-0001"
    assert r.contact.phone == "+8613900001111" and r.contact.name == "李先生"
    assert r.received_at == datetime(2026, 11, 24, 9, 15, tzinfo=CST)
    assert "我要投诉" in r.body and "要求主管回电" in r.body
    assert r.hints.category is Category.complaint and r.hints.urgency is Priority.important
    assert r.channel_meta["ivr_path"] == ["2", "1"]


def test_phone_naive_start_time_is_local_time(ctx) -> None:
    r = parse_phone(j({"call_id": "c", "started_at": "2026-11-24T09:15:00", "agent_notes": "x"}), ctx)
    assert r.received_at is not None and r.received_at.utcoffset() == timedelta(hours=8)


def test_phone_without_words_is_missing_content(ctx) -> None:
    with pytest.raises(MissingContent, match="transcript"):
        parse_phone(j({"call_id": "c", "caller": "139"}), ctx)


def test_phone_numeric_call_id_is_accepted_as_text(ctx) -> None:
    assert parse_phone(j({"call_id": 12345, "transcript": "hi"}), ctx).source_id == "12345"


# -- sms -------------------------------------------------------------------------------------------
def test_sms_form_post(ctx) -> None:
    raw = b"ToCountry=CN&MessageSid=SM8f2a&From=%2B8613900001111&To=%2B86106900001&Body=%E6%88%91%E7%9A%84%E5%AE%BD%E5%B8%A6%E6%96%AD%E4%BA%86&NumMedia=0"
    r = parse_sms(raw, ctx)
    assert r.source_id == "SM8f2a" and r.contact.phone == "+8613900001111" and r.body == "我的宽带断了"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"MessageSid=SM1&From=%2B8613900001111&Body=", MissingContent),
        (b"From=%2B8613900001111&Body=hi", MissingContent),
        (b"MessageSid=SM1&Body=hi", MissingContent),
        (b"\xff\xfe\x00garbage", UnparseablePayload),
        (b"", UnparseablePayload),
    ],
)
def test_sms_rejections(ctx, raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_sms(raw, ctx)


# -- web -------------------------------------------------------------------------------------------
def test_web_form(ctx) -> None:
    r = parse_web(j({
        "form_id": "F-991", "name": "Anna", "email": "Anna@Example.com ", "phone": "0086 139-0000-1111",
        "subject": "Order not delivered", "message": "Order 8812 never arrived.", "category": "complaint",
        "page_url": "https://shop.example.cn/help",
    }), ctx)
    assert r.contact.email == "anna@example.com" and r.contact.phone == "+8613900001111"
    assert r.subject == "Order not delivered" and r.hints.category is Category.complaint


def test_web_chat_transcript_keeps_only_the_visitors_words_as_body(ctx) -> None:
    r = parse_web(j({
        "session_id": "chat-77", "visitor": {"name": "小刘", "phone": "13800002222"},
        "messages": [
            {"from": "bot", "text": "您好，请问有什么可以帮您？", "at": "2026-11-24T10:00:00+08:00"},
            {"from": "visitor", "text": "APP一直闪退", "at": "2026-11-24T10:00:05+08:00"},
            {"from": "agent", "text": "请问是什么机型？", "at": "2026-11-24T10:01:00+08:00"},
            {"from": "visitor", "text": "华为 Mate 60", "at": "2026-11-24T10:01:30+08:00"},
        ],
    }), ctx)
    assert r.body == "APP一直闪退\n华为 Mate 60"
    assert r.received_at == datetime(2026, 11, 24, 10, 0, tzinfo=CST)
    assert r.channel_meta["staff_messages"] == 2


def test_web_chat_with_only_bot_messages_is_missing_content(ctx) -> None:
    with pytest.raises(MissingContent, match="visitor"):
        parse_web(j({"session_id": "s", "messages": [{"from": "bot", "text": "hi"}]}), ctx)


def test_web_payload_of_neither_kind(ctx) -> None:
    with pytest.raises(MissingContent, match="form_id"):
        parse_web(j({"message": "hi"}), ctx)


# -- app -------------------------------------------------------------------------------------------
def test_app_with_wrong_types_is_normalised(ctx) -> None:
    r = parse_app(j({
        "event_id": 99812, "user_id": 5531, "text": "付款失败", "app_version": 3.2,
        "attachments": [{"name": "screen.png", "url": "https://cdn.example.cn/a.png", "size": "2048"},
                        "https://cdn.example.cn/b.png", 42, {"size": "big"}],
    }), ctx)
    assert r.source_id == "99812" and r.contact.app_user_id == "5531"
    assert [a.size for a in r.attachments] == [2048, None, None]
    assert r.attachments[1].url == "https://cdn.example.cn/b.png"


def test_app_text_of_wrong_type_is_rejected_with_the_field(ctx) -> None:
    with pytest.raises(UnparseablePayload, match="text"):
        parse_app(j({"event_id": "e1", "text": ["not", "text"]}), ctx)


def test_app_json_array_is_unparseable(ctx) -> None:
    with pytest.raises(UnparseablePayload, match="JSON object"):
        parse_app(b"[1,2,3]", ctx)


def test_deeply_nested_json_is_refused(ctx) -> None:
    with pytest.raises(UnparseablePayload, match="nested"):
        parse_app(b"[" * 100_000 + b"]" * 100_000, ctx)
    with pytest.raises(UnparseablePayload, match="nested"):
        nested: object = 1
        for _ in range(40):
            nested = [nested]
        parse_app(j({"event_id": "e", "text": "x", "extra": nested}), ctx)


def test_invalid_utf8_is_unparseable(ctx) -> None:
    with pytest.raises(UnparseablePayload, match="UTF-8"):
        parse_app(b'{"event_id": "e1", "text": "\xff\xfe"}', ctx)


# -- walk-in ---------------------------------------------------------------------------------------
def test_walkin_masks_the_identity_number(ctx) -> None:
    r = parse_walkin(j({
        "ticket_no": "BJ-CY-0042", "branch": "北京朝阳营业厅", "staff_id": "E1024",
        "customer": {"name": "赵女士", "phone": "13700003333", "id_number": "110105199001011234"},
        "summary": "客户咨询理财产品赎回规则", "category": "咨询",
    }), ctx)
    assert r.channel_meta["id_number_masked"] == "**************1234"
    assert "110105199001011234" not in r.model_dump_json()
    assert r.hints.category is Category.inquiry and r.contact.phone == "+8613700003333"


def test_walkin_without_summary(ctx) -> None:
    with pytest.raises(MissingContent):
        parse_walkin(j({"ticket_no": "T1", "summary": "  "}), ctx)


def test_missing_required_id_names_the_field(ctx) -> None:
    with pytest.raises(MissingContent, match="ticket_no"):
        parse_walkin(j({"summary": "hello"}), ctx)


def test_control_characters_in_ids_are_refused(ctx) -> None:
    with pytest.raises(UnparseablePayload, match="control"):
        parse_app(j({"event_id": "e1\r\nX-Injected: 1", "text": "hi"}), ctx)


def test_timestamps_far_in_the_past_are_not_trusted(ctx) -> None:
    r = parse_phone(j({"call_id": "c", "started_at": "1970-01-01T00:00:00Z", "transcript": "x"}), ctx)
    assert r.received_at is None
    assert datetime(2026, 1, 1, tzinfo=UTC) < ctx.now


@pytest.mark.parametrize("payload", [
    {"ticket_no": "T2", "phone": "139 0000 1111", "name": "赵女士", "summary": "咨询积分"},  # flat
    {"ticket_no": "T2", "customer_phone": "13900001111", "customer_name": "赵女士", "summary": "咨询积分"},
    {"ticket_no": "T2", "customer": {"mobile": "13900001111", "name": "赵女士"}, "summary": "咨询积分"},
    {"ticket_no": "T2", "customer": {"name": "赵女士"}, "tel": "13900001111", "summary": "咨询积分"},
])
def test_walkin_finds_the_customer_where_front_desk_systems_put_it(ctx, payload: dict) -> None:
    """The probe: a walk-in with the phone at the top level was accepted with no customer, and its
    receipt went to {}. The common variants are mapped to the contract's `customer` (docs/channels.md)."""
    r = parse_walkin(j(payload), ctx)
    assert (r.contact.phone, r.contact.name) == ("+8613900001111", "赵女士")
