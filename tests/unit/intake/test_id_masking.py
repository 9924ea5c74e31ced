"""Identity numbers are masked in raw payloads before they are kept (docs/channels.md)."""

from __future__ import annotations

import json

import pytest

from services.intake.domain.contacts import is_id_number, mask_id_numbers

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def with_check(first17: str) -> str:
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


# GB 11643-1999's own example number, and two made up with correct check characters
GB_EXAMPLE = "11010519491231002X"
VALID = [GB_EXAMPLE, with_check("44030420010203123"), with_check("51010819850715561")]


def test_the_check_character_is_computed_as_the_standard_says() -> None:
    assert all(is_id_number(v.encode()) for v in VALID)
    assert not is_id_number(b"110105194912310021")  # one digit off


@pytest.mark.parametrize("number", VALID)
def test_a_valid_number_in_free_text_keeps_only_its_last_four(number: str) -> None:
    raw = f"MessageSid=SM1&From=13900001111&Body=我的身份证号{number}，请查询".encode()
    masked = mask_id_numbers(raw)
    assert number.encode() not in masked and ("*" * 14 + number[-4:]).encode() in masked
    assert len(masked) == len(raw)


def test_json_stays_json_and_an_id_number_field_is_masked_whatever_it_holds() -> None:
    raw = json.dumps({"ticket_no": "T1", "customer": {"id_number": "110105199001011234", "phone": "13900001111"},
                      "summary": f"客户报身份证 {VALID[1]}"}, ensure_ascii=False).encode()
    data = json.loads(mask_id_numbers(raw))
    assert data["customer"] == {"id_number": "**************1234", "phone": "13900001111"}
    assert data["summary"] == f"客户报身份证 {'*' * 14}{VALID[1][-4:]}"


@pytest.mark.parametrize("raw", [
    b"order 110105194912310021 shipped",  # 18 digits, wrong check character
    b"tracking 1101051949123100211",  # part of a longer number
    b"phone 13900001111 and card 6222021234567890123",
    b"short",
])
def test_other_numbers_are_left_alone(raw: bytes) -> None:
    assert mask_id_numbers(raw) == raw
