"""Raw payloads are kept 30 (KEFU_INTAKE) and 90 days (KEFU_REJECTED): identity numbers are masked
before they are kept, whether the adapter came over HTTP or stored the payload itself over NATS."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import nats.js.errors
import pytest

from shared.contract import subjects as s
from tests.support.services import ADAPTER_KEY
from tests.unit.intake.test_id_masking import GB_EXAMPLE, VALID

pytestmark = pytest.mark.integration
FIELD_ONLY = "110105199001011234"  # no valid check character: masked because of the field it is in


def walkin(ticket: str, number: str) -> bytes:
    return json.dumps({"ticket_no": ticket, "branch": "北京朝阳营业厅",
                       "customer": {"name": "赵女士", "phone": "13900001111", "id_number": FIELD_ONLY},
                       "summary": f"客户身份证号 {number}，咨询积分"}, ensure_ascii=False).encode()


async def everything_kept(js, stream: str) -> bytes:
    info = await js.stream_info(stream)
    kept = b""
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            kept += (await js.get_msg(stream, seq)).data or b""
        except nats.js.errors.NotFoundError:
            continue
    return kept


async def test_identity_numbers_never_stay_in_the_kept_raw_payloads(start, js, events) -> None:
    async with start["intake"]() as intake, intake.client(ADAPTER_KEY) as http:
        stored = await js.publish("kefu.intake.walkin", walkin("T-nats", VALID[1]))  # an adapter over NATS
        over_http = await http.post("/v1/intake/walkin", content=walkin("T-http", VALID[2]),
                                    headers={"Content-Type": "application/json"})
        refused = await http.post("/v1/intake/sms", content=urlencode({"MessageSid": "SM-id", "Body": GB_EXAMPLE}),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        received = await events.wait_for(s.REQUEST_RECEIVED, count=2)
        await events.wait_for(s.REQUEST_REJECTED)
    kept = await everything_kept(js, s.STREAM_INTAKE) + await everything_kept(js, s.STREAM_REJECTED)
    with pytest.raises(nats.js.errors.NotFoundError):
        await js.get_msg(s.STREAM_INTAKE, stored.seq)  # the adapter's original is erased
    assert over_http.status_code == 202 and refused.status_code == 422
    assert sorted(r["source_id"] for r in received) == ["T-http", "T-nats"]
    everything = kept + json.dumps([e for _, e in events.messages], ensure_ascii=False).encode()
    for number in (FIELD_ONLY, *VALID):
        assert number.encode() not in everything, number
    assert b"**************1234" in kept and ("*" * 14 + VALID[1][-4:]).encode() in kept
