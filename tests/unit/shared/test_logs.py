"""The log formatter masks personal data and credentials; the log scan finds them when they leak."""

from __future__ import annotations

import json
import logging

from hypothesis import example, given
from hypothesis import strategies as st

from shared.observability.logs import _MASKS, _NEEDED, JsonFormatter, mask
from tests.support.logscan import findings

DIRTY = [
    "customer +8613900001111 wrote", "from 13900001111", "0086 139-0000-1111 called", "id 110105199001011234",
    "mail wangfang@example.cn", "Authorization: Bearer test-admin-token",
    "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhMSJ9.c2lnbmF0dXJl", "desk 010-88886666",
]
CLEAN = ["request req_pbmdjepocervbtodigjhrr7ubk assigned", "event 9f13900001111aa0c", "seq 12345678901",
         "at 2026-11-24T09:00:00+08:00", "survey srv_0123456789abcdef01234567"]


def test_masking_removes_what_the_log_scan_looks_for_and_keeps_ids() -> None:
    assert all(findings([line]) for line in DIRTY[:7])  # the scan sees each in clear
    assert findings([mask(line) for line in DIRTY]) == []
    assert [mask(line) for line in CLEAN] == CLEAN


def test_a_record_is_one_json_line_with_values_masked_and_control_characters_escaped() -> None:
    record = logging.LogRecord("kefu.test", logging.WARNING, __file__, 1, "bad payload from %s\r\nFAKE",
                               ("13900001111",), None)
    record.detail = "reply to anna@example.com"
    line = JsonFormatter("test").format(record)
    assert "\n" not in line and "\r" not in line
    out = json.loads(line)
    assert out["msg"] == "bad payload from <phone>\r\nFAKE" and out["detail"] == "reply to <email>"


# text built from the pieces the masks look for, and from the base32 of kefu's ids
_PIECES = st.sampled_from(["1", "0", "9", "86", "+", "@", "-", " ", "eyJ", "Bearer ", "bearer\t", ".", "x", "a.b",
                           "19", "20", "0086", "139", "req_", "abcz27", "_", "X", "\n"])


@given(st.lists(_PIECES | st.text(max_size=4), max_size=40).map("".join))
@example("desk 020-88886666")  # a landline and an id number with no digit one
@example("id 22010520000202222X")
def test_the_unscanned_fast_path_masks_exactly_what_every_pattern_would(text: str) -> None:
    everything = text
    for pattern, replacement in _MASKS:
        everything = pattern.sub(replacement, everything)
    assert mask(text) == everything


def test_kefu_ids_are_not_scanned_and_a_digit_one_is() -> None:
    assert _NEEDED.search("req_pbmdjepocervbtodigjhrr7ubk") is None  # base32: a-z and 2-7 only
    assert _NEEDED.search("from 13900001111") is not None
