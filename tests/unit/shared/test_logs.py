"""The log formatter masks personal data and credentials; the log scan finds them when they leak."""

from __future__ import annotations

import json
import logging

from shared.observability.logs import JsonFormatter, mask
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
