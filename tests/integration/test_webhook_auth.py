"""HTTP intake: signed webhooks (bad, stale, replayed -> 401) and per-adapter rate limits (429)."""

from __future__ import annotations

import time

import pytest

from devtools.payloads import CONTENT_TYPES, payload
from services.intake.domain.webhooks import sign
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.support.services import ADAPTER_KEY

pytestmark = pytest.mark.integration


async def test_signed_webhooks_are_accepted_once_and_bad_or_stale_ones_refused(start, events) -> None:
    body = payload(Channel.app, "signed-1")
    headers = {"Content-Type": CONTENT_TYPES[Channel.app]}
    async with start["intake"](adapter_secrets="mobile:whsec_test") as intake, intake.client("") as http:
        now = int(time.time())
        ok = await http.post("/v1/intake/app", content=body, headers=headers | {
            "Authorization": "", "Kefu-Signature": sign("whsec_test", now, body)})
        replayed = await http.post("/v1/intake/app", content=body, headers=headers | {
            "Authorization": "", "Kefu-Signature": sign("whsec_test", now, body)})
        tampered = await http.post("/v1/intake/app", content=body + b" ", headers=headers | {
            "Authorization": "", "Kefu-Signature": sign("whsec_test", now + 1, body)})
        stale = await http.post("/v1/intake/app", content=body, headers=headers | {
            "Authorization": "", "Kefu-Signature": sign("whsec_test", now - 301, body)})
        wrong_secret = await http.post("/v1/intake/app", content=body, headers=headers | {
            "Authorization": "", "Kefu-Signature": sign("guess", now + 2, body)})
        nothing = await http.post("/v1/intake/app", content=body, headers=headers | {"Authorization": ""})
        received = (await events.wait_for(s.REQUEST_RECEIVED))[0]
    assert ok.status_code == 202 and received["source_id"] == "signed-1"
    assert (replayed.status_code, replayed.json()["error"]) == (401, "replayed_signature")
    assert (tampered.status_code, tampered.json()["error"]) == (401, "bad_signature")
    assert (stale.status_code, stale.json()["error"]) == (401, "bad_signature") and "window" in stale.json()["detail"]
    assert wrong_secret.status_code == nothing.status_code == 401


async def test_an_adapter_over_its_rate_limit_gets_429_with_retry_after(start) -> None:
    async with start["intake"](rate_limit_per_second=0.01, rate_limit_burst=3) as intake, \
            intake.client(ADAPTER_KEY) as http:
        codes = []
        for i in range(5):
            resp = await http.post("/v1/intake/sms", content=payload(Channel.sms, f"SM-rate-{i}"),
                                   headers={"Content-Type": CONTENT_TYPES[Channel.sms]})
            codes.append(resp.status_code)
        limited = resp
    assert codes == [202, 202, 202, 429, 429]
    assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


async def test_respelt_copies_of_a_signature_are_refused_and_cost_the_adapter_nothing(start, js) -> None:
    """The probe's bypass: `t=T,v1=V,x=1`, `t=0T,...` or the fields reordered were accepted again
    after `t=T,v1=V` was refused as a replay; each copy spent the adapter's rate limit (after 230 the
    genuine next request got 429) and was kept in KEFU_REJECTED."""
    body = payload(Channel.app, "signed-2")
    headers = {"Content-Type": CONTENT_TYPES[Channel.app], "Authorization": ""}
    async with start["intake"](adapter_secrets="mobile:whsec_test", rate_limit_per_second=0.01,
                               rate_limit_burst=2) as intake, intake.client("") as http:
        now = int(time.time())
        signed = sign("whsec_test", now, body)
        t, v1 = signed.split(",")
        first = await http.post("/v1/intake/app", content=body, headers=headers | {"Kefu-Signature": signed})
        variants = [f"{signed},x=1", f"{v1},{t}", f"t=0{t[2:]},{v1}", f"{t}, {v1}", f"{signed},{v1}"] * 10
        copies = [await http.post("/v1/intake/app", content=body, headers=headers | {"Kefu-Signature": v})
                  for v in variants]
        later = payload(Channel.app, "signed-3")
        genuine = await http.post("/v1/intake/app", content=later,
                                  headers=headers | {"Kefu-Signature": sign("whsec_test", now + 1, later)})
    rejected = await js.stream_info(s.STREAM_REJECTED)
    assert first.status_code == 202
    assert {(c.status_code, c.json()["error"]) for c in copies} == {(401, "bad_signature")}
    assert genuine.status_code == 202  # the 50 copies did not spend the adapter's rate limit
    assert rejected.state.messages == 0


async def test_an_adapter_key_named_after_a_channel_submits_that_channel_only(start) -> None:
    async with start["intake"](adapter_keys="sms:sms-only-key") as intake, intake.client("sms-only-key") as http:
        other = await http.post("/v1/intake/wechat", content=payload(Channel.wechat, "wx-scoped"),
                                headers={"Content-Type": CONTENT_TYPES[Channel.wechat]})
        own = await http.post("/v1/intake/sms", content=payload(Channel.sms, "SM-scoped"),
                              headers={"Content-Type": CONTENT_TYPES[Channel.sms]})
    assert (other.status_code, other.json()["error"]) == (403, "forbidden")
    assert own.status_code == 202
