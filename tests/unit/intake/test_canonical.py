from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.domain.canonical import (
    CustomerRecord,
    canonical_request,
    customer_ref,
    request_id_for,
)
from services.intake.domain.contacts import contact_key, normalise_email, normalise_phone
from services.intake.domain.identity import proof
from services.intake.domain.model import Contact, ParsedRequest
from services.intake.domain.text import decode_bytes, detect_language, html_to_text
from shared.contract.enums import Channel, Language, Tier


@pytest.mark.parametrize(
    "raw", ["+86 139 0000 1111", "13900001111", "0086-139-0000-1111", "+86 (139) 0000-1111", "139 0000 1111"]
)
def test_phone_numbers_in_every_format_normalise_to_the_same_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+8613900001111"


def test_landline_and_foreign_numbers() -> None:
    assert normalise_phone("010-8888 6666") == "+861088886666"
    assert normalise_phone("+1 415 555 0100") == "+14155550100"
    assert normalise_phone("") is None and normalise_phone("abc") is None


def test_emails_are_case_insensitive_and_validated() -> None:
    assert normalise_email(" Zhang.Wei@Example.CN ") == "zhang.wei@example.cn"
    assert normalise_email("not-an-email") is None


def test_contact_keys_do_not_contain_the_contact() -> None:
    key = contact_key("phone", "+8613900001111")
    assert "13900001111" not in key and key.startswith("phone.")


@given(st.sampled_from(list(Channel)), st.text(min_size=1, max_size=200))
def test_request_id_is_a_valid_kv_key_and_deterministic(channel: Channel, source_id: str) -> None:
    rid = request_id_for(channel, source_id)
    assert rid == request_id_for(channel, source_id)
    assert rid.startswith("req_") and len(rid) == 30 and rid[4:].isalnum() and rid[4:].islower()


def test_same_source_id_on_two_channels_are_two_requests() -> None:
    assert request_id_for(Channel.sms, "1") != request_id_for(Channel.app, "1")


def test_registered_customer_gives_id_tier_and_account_manager() -> None:
    record = CustomerRecord(customer_id="c-1", name="张伟", phones=["+8613900001111"], tier=Tier.vip,
                            account_manager="agent-7")
    ref = customer_ref(Contact(phone="+8613900001111"), record, proof=proof(Channel.sms, Contact(phone="+8613900001111")))
    assert (ref.customer_id, ref.tier, ref.registered, ref.account_manager, ref.name) == (
        "c-1", Tier.vip, True, "agent-7", "张伟")


def test_unregistered_contact_gets_a_stable_anonymous_id() -> None:
    sms = proof(Channel.sms, Contact(phone="+8613900001111"))
    a = customer_ref(Contact(phone="+8613900001111"), None, proof=sms)
    b = customer_ref(Contact(phone="+8613900001111", name="x"), None, proof=sms)
    assert a.customer_id == b.customer_id and a.customer_id.startswith("anon-") and a.tier is Tier.standard


def test_a_contact_the_sender_did_not_prove_neither_recognises_nor_is_written_to() -> None:
    typed = Contact(phone="+8613900001111", email="someone@example.cn")
    ref = customer_ref(typed, None, proof=proof(Channel.web, typed), possible_customer_id="c-1")
    assert (ref.customer_id, ref.registered, ref.reachable, ref.possible_customer_id) == (None, False, [], "c-1")
    assert ref.phone == "+8613900001111"  # shown to the agent as what the sender wrote


def test_canonical_request_falls_back_to_intake_time() -> None:
    intake_time = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
    event = canonical_request(
        channel=Channel.sms,
        parsed=ParsedRequest(source_id="SM1", body="我要投诉"),
        customer=customer_ref(Contact(), None, proof=proof(Channel.sms, Contact())),
        intake_time=intake_time,
        now=intake_time,
    )
    assert event.received_at == intake_time and event.language is Language.zh
    assert event.model_dump(mode="json")["received_at"] == "2026-11-24T01:02:03+00:00"


@pytest.mark.parametrize(
    ("text", "lang"),
    [("我的订单 #A1234 还没到", Language.zh), ("My order has not arrived", Language.en),
     ("iPhone 15 Pro Max 屏幕碎了", Language.zh), ("", Language.en)],
)
def test_language_detection(text: str, lang: Language) -> None:
    assert detect_language(text) is lang


def test_html_to_text_drops_scripts_and_keeps_blocks() -> None:
    assert html_to_text("<p>a&amp;b</p><script>x()</script><div>c</div>") == "a&b\n\nc"


def test_decode_falls_back_through_common_charsets() -> None:
    assert decode_bytes("测试".encode("gbk"), None) == "测试"
    assert decode_bytes("測試".encode("big5"), "big5") == "測試"
    assert decode_bytes("测试".encode("gbk"), "no-such-charset") == "测试"


@pytest.mark.parametrize(
    ("text", "rating"),
    [("5", 5), ("５", 5), (" 4分 ", 4), ("3星", 3), ("2/5", 2), ("满意", 4), ("非常满意！", 5), ("不满意", 2),
     ("一般。", 3), ("Very satisfied", 5), ("ok", 3), ("1 star", 1)],
)
def test_bare_ratings_are_survey_answers(text: str, rating: int) -> None:
    from services.intake.domain.replies import rating_of

    assert rating_of(text) == rating


@pytest.mark.parametrize("text", ["6", "0", "12", "我要投诉", "5 个问题还没解决", "满意吗？你们的服务太差了", ""])
def test_anything_else_is_not(text: str) -> None:
    from services.intake.domain.replies import rating_of

    assert rating_of(text) is None
