"""Bad input: a clear reason, a rejected event, the raw bytes kept; the service stays up."""

from __future__ import annotations

import pytest

from devtools.payloads import payload
from shared.contract import subjects as s
from shared.contract.enums import Channel
from tests.integration.conftest import pipeline
from tests.support.services import ADAPTER_KEY

pytestmark = pytest.mark.integration


async def test_malformed_payload_on_nats_is_rejected_and_its_raw_bytes_kept(start, events) -> None:
    raw = b'{"call_id": "c-1", "transcript": '  # truncated JSON
    async with pipeline(start) as (intake, _), intake.client() as admin:
        import nats

        nc = await nats.connect(intake.app.state.runtime.settings.nats_url)
        await nc.jetstream().publish("kefu.intake.phone", raw)
        await nc.jetstream().publish("kefu.intake.phone", payload(Channel.phone, "c-ok"))
        rejected = (await events.wait_for(s.REQUEST_REJECTED))[0]
        await events.wait_for(s.REQUEST_RECEIVED, source_id="c-ok")  # still up, still working
        await nc.close()
        kept = await admin.get(f"/v1/rejected/{rejected['raw']['seq']}")
    assert rejected["channel"] == "phone" and rejected["reason"] == "unparseable" and rejected["via"] == "nats"
    assert "not valid JSON" in rejected["detail"]
    assert rejected["raw"] == {"stream": "KEFU_REJECTED", "seq": 1, "size": len(raw), "kept_bytes": len(raw)}
    assert kept.status_code == 200 and kept.content == raw
    assert kept.headers["kefu-reason"] == "unparseable"




@pytest.mark.parametrize(
    ("channel", "body", "content_type", "status", "reason"),
    [
        ("phone", b"{not json", "application/json", 400, "unparseable"),
        ("app", b'{"text": "hello"}', "application/json", 422, "missing_content"),
        ("sms", b"MessageSid=SM1&From=%2B8613900001111&Body=hi", "application/json", 415, "unsupported_media_type"),
        ("fax", b"hello", "text/plain", 404, "unknown_channel"),
        ("wechat", b'<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>', "text/xml", 400, "unparseable"),
        ("web", b'{"form_id": "f1", "message": "' + b"x" * 600_000 + b'"}', "application/json", 413, "too_large"),
        ("email", b"From: a@example.net\r\nSubject: s\r\n\r\n" + b"x" * 600_000, "message/rfc822", 413, "too_large"),
        ("app", b'{"event_id": "e", "text": "x", "n": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json",
         400, "unparseable"),
    ],
)
async def test_bad_http_payloads_get_4xx_with_a_json_reason_and_a_rejected_event(
    start, events, channel: str, body: bytes, content_type: str, status: int, reason: str
) -> None:
    async with start["intake"]() as intake, intake.client(ADAPTER_KEY) as http:
        resp = await http.post(f"/v1/intake/{channel}", content=body, headers={"Content-Type": content_type})
        rejected = (await events.wait_for(s.REQUEST_REJECTED))[0]
        healthy = await http.get("/readyz")
        async with intake.client() as admin:  # the id handed out finds the kept payload
            kept = await admin.get(f"/v1/rejected/{resp.json()['rejection_id']}")
    assert resp.status_code == status
    assert resp.json()["error"] == reason and resp.json()["detail"]
    assert resp.json()["rejection_id"] == rejected["rejection_id"]
    assert kept.status_code == 200 and kept.headers["kefu-rejection-id"] == rejected["rejection_id"]
    assert rejected["reason"] == reason and rejected["via"] == "http" and rejected["raw"]["seq"] >= 1
    assert rejected["raw"]["kept_bytes"] <= len(body)
    assert healthy.status_code == 200


async def test_wechat_subscribe_event_is_acknowledged_but_makes_no_request(start, events) -> None:
    xml = b"<xml><FromUserName>oX</FromUserName><MsgType>event</MsgType><Event>subscribe</Event></xml>"
    async with start["intake"]() as intake, intake.client(ADAPTER_KEY) as http:
        resp = await http.post("/v1/intake/wechat", content=xml, headers={"Content-Type": "text/xml"})
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert events.of(s.REQUEST_RECEIVED) == [] and events.of(s.REQUEST_REJECTED) == []


async def test_a_kept_payload_can_be_replayed_into_intake(start, events, js) -> None:
    async with start["intake"]() as intake, intake.client() as admin:
        await js.publish("kefu.intake.app", b'{"event_id": "e-9"}')  # no text: missing content
        rejected = (await events.wait_for(s.REQUEST_REJECTED))[0]
        replay = await admin.post(f"/v1/rejected/{rejected['rejection_id']}/replay")
        missing = await admin.post("/v1/rejected/999/replay")
        unknown = await admin.get(f"/v1/rejected/rej_{'a' * 26}")
        malformed = await admin.get("/v1/rejected/rej_x")
    assert replay.status_code == 202 and replay.json() == {"status": "replayed", "channel": "app"}
    last = await js.get_last_msg(s.STREAM_INTAKE, "kefu.intake.app")
    assert last.data == b'{"event_id": "e-9"}' and last.headers["Kefu-Replay-Of"] == str(rejected["raw"]["seq"])
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert unknown.status_code == 404 and malformed.status_code == 422


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_oversized_payload_is_kept_as_truncated_and_cannot_be_replayed(start, events, declared: bool) -> None:
    """The probe: the kept beginning of a cut-off body was recorded with its own size, as if whole,
    and replaying it sent a different payload than the channel delivered."""
    body = b'{"form_id": "f-big", "message": "' + b"x" * 600_000 + b'"}'

    async def chunks():
        for i in range(0, len(body), 65_536):
            yield body[i:i + 65_536]

    async with start["intake"]() as intake, intake.client(ADAPTER_KEY) as http, intake.client() as admin:
        resp = await http.post("/v1/intake/web", content=body if declared else chunks(),
                               headers={"Content-Type": "application/json"})
        rejected = (await events.wait_for(s.REQUEST_REJECTED))[0]
        kept = await admin.get(f"/v1/rejected/{rejected['raw']['seq']}")
        replay = await admin.post(f"/v1/rejected/{rejected['raw']['seq']}/replay")
    assert resp.status_code == 413
    assert rejected["raw"]["size"] > 512 * 1024 >= rejected["raw"]["kept_bytes"]  # beyond the limit; at most that kept
    assert kept.headers["kefu-truncated"] == "true"
    assert (replay.status_code, replay.json()["error"]) == (409, "truncated")


async def test_http_intake_requires_an_adapter_key(start) -> None:
    async with start["intake"]() as intake:
        async with intake.client("wrong") as http:
            wrong = await http.post("/v1/intake/sms", content=b"x")
        async with intake.client("") as http:
            none = await http.post("/v1/intake/sms", content=b"x", headers={"Authorization": ""})
        async with intake.client(ADAPTER_KEY) as http:
            not_admin = await http.get("/v1/customers/c-1")
    assert wrong.status_code == none.status_code == not_admin.status_code == 401
    assert wrong.json()["error"] == "unauthorized"
