"""The gateway on a real nats-server with the real intake and routing: WeChat pushes built and
signed by wechatpy (plain and safe mode) and SMS webhooks signed by the twilio package's
RequestValidator become requests, once each, only when signed; kefu's messages go out through
local HTTP servers that speak the platforms' documented send APIs (an expired access token
renewed once, WeChat's 48-hour window and an invalid number reported as outbound.failed), and an
SMS delivery status becomes outbound.delivered."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from devtools.natsserver import free_port
from services.gateway.app import create_app as gateway_app
from services.gateway.settings import GatewaySettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from shared.contract import subjects as s
from shared.contract.enums import Channel, Language
from shared.contract.models import OutboundMessage
from tests.support.services import common_settings, running, tap

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "config"
TOKEN, AES_KEY, APP_ID, SECRET = "wx-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef", "s3cret"
ACCOUNT, AUTH = "AC0123456789", "twilio-auth-token"


@dataclass
class Platform:
    """What the platform's API was asked to do."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def wechat_api(platform: Platform) -> FastAPI:
    """WeChat's API as documented: GET /cgi-bin/token, POST /cgi-bin/message/custom/send. The first
    token it hands out expires at once (42001); `o_old` last wrote more than 48 hours ago (45015)."""
    api = FastAPI()

    @api.get("/cgi-bin/token")
    async def token(grant_type: str, appid: str, secret: str) -> dict[str, Any]:
        if (grant_type, appid, secret) != ("client_credential", APP_ID, SECRET):
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        platform.tokens.append(f"T{len(platform.tokens) + 1}")
        return {"access_token": platform.tokens[-1], "expires_in": 7200}

    @api.post("/cgi-bin/message/custom/send")
    async def send(access_token: str, request: Request) -> dict[str, Any]:
        if access_token == "T1":
            return {"errcode": 42001, "errmsg": "access_token expired"}
        body = await request.json()
        if body["touser"] == "o_old":
            return {"errcode": 45015, "errmsg": "response out of time limit or subscription is canceled"}
        platform.sent.append(body)
        platform.changed.set()
        return {"errcode": 0, "errmsg": "ok"}

    return api


def twilio_api(platform: Platform) -> FastAPI:
    """Twilio's Messages API as documented: basic auth, form body, 201 with the message's sid;
    400 with code 21211 for an invalid To."""
    api = FastAPI()

    @api.post(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    async def create(request: Request) -> JSONResponse:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{AUTH}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        form = dict(parse_qsl((await request.body()).decode()))
        if form["To"] == "+15005550001":
            return JSONResponse({"code": 21211, "message": "The 'To' number is not a valid phone number."}, 400)
        platform.sent.append(form)
        platform.changed.set()
        return JSONResponse({"sid": f"SM{len(platform.sent):032d}", "status": "queued"}, status_code=201)

    return api


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def sent(platform: Platform, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(15):
        while len(platform.sent) < count:
            platform.changed.clear()
            await platform.changed.wait()
    return platform.sent


def signed(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def push(text: str, msg_id: str, openid: str = "oUser123") -> str:
    return (f"<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>")


async def test_wechat_pushes_become_requests_and_replies_go_out_through_the_api(nats_server, js) -> None:
    platform = Platform()
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    async with serving(wechat_api(platform)) as api_base, \
            running(intake_app, IntakeSettings(**settings)) as intake, running(routing_app, RoutingSettings(**settings)), \
            running(gateway_app, GatewaySettings(**settings, platforms="wechat", wechat_token=TOKEN, wechat_app_id=APP_ID,
                                                 wechat_app_secret=SECRET, wechat_encoding_aes_key=AES_KEY,
                                                 wechat_api_base=api_base)) as gateway, \
            httpx.AsyncClient(base_url=gateway.base_url) as wx, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events, \
            tap(nats_server.url, s.STREAM_OUTBOUND, s.OUTBOUND_ALL) as outbound:
        now, nonce = str(int(time.time())), "38211"
        check = await wx.get("/wechat", params={"signature": signed(TOKEN, now, nonce), "timestamp": now,
                                                "nonce": nonce, "echostr": "8817261"})
        forged_check = await wx.get("/wechat", params={"signature": signed("guess", now, nonce), "timestamp": now,
                                                       "nonce": nonce, "echostr": "8817261"})
        # safe mode, as WeChat sends it: the envelope and msg_signature made by wechatpy
        envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(push("我的订单还没到", "2461100001"), nonce, now)
        encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        query = {"signature": signed(TOKEN, now, nonce), "timestamp": now, "nonce": nonce, "encrypt_type": "aes",
                 "msg_signature": signed(TOKEN, now, nonce, encrypted), "openid": "oUser123"}
        safe = [await wx.post("/wechat", params=query, content=envelope) for _ in range(3)]  # WeChat retries
        # plain mode: the XML itself, signed by the URL's signature only
        plain = await wx.post("/wechat", params={k: query[k] for k in ("signature", "timestamp", "nonce")},
                              content=push("发票怎么开", "2461100002"))
        forged = await wx.post("/wechat", params=query | {"msg_signature": signed("guess", now, nonce, encrypted)},
                               content=envelope)
        old = str(int(time.time()) - 3600)
        stale = await wx.post("/wechat", params=query | {"timestamp": old, "signature": signed(TOKEN, old, nonce),
                                                         "msg_signature": signed(TOKEN, old, nonce, encrypted)},
                              content=envelope)
        received = await events.wait_for(s.REQUEST_RECEIVED, count=2)
        delivered = await sent(platform, 2)  # the two receipts, on the customer's WeChat
        # a registered customer who last wrote more than 48 hours ago (the platform answers 45015):
        # the receipt is refused, and routing sends it to their registered phone instead
        async with intake.client() as admin:
            registered = await admin.put("/v1/customers/c-old", json={"name": "老客户", "wechat_openids": ["o_old"],
                                                                       "phones": ["+8613800138099"]})
        old_push = push("上次的问题还没解决", "2461100003", openid="o_old")
        await wx.post("/wechat", params={k: query[k] for k in ("signature", "timestamp", "nonce")}, content=old_push)
        old_rid = (await events.wait_for(s.REQUEST_RECEIVED, source_id="2461100003"))[0]["request_id"]
        failed = (await events.wait_for(s.OUTBOUND_FAILED, request_id=old_rid))[0]
        by_sms = (await outbound.wait_for("kefu.outbound.sms", request_id=old_rid))[0]
        only = events.of(s.REQUEST_RECEIVED)

    assert check.status_code == 200 and check.text == "8817261"
    assert forged_check.status_code == 403 and forged_check.json()["error"] == "bad_signature"
    assert [r.status_code for r in safe] == [200, 200, 200] and all(r.text == "success" for r in safe)
    assert plain.status_code == 200 and plain.text == "success"
    assert forged.status_code == 403 and stale.status_code == 403 and stale.json()["error"] == "stale_request"
    assert sorted(e["source_id"] for e in received) == ["2461100001", "2461100002"] and len(only) == 3
    assert {e["customer"]["wechat_openid"] for e in received} == {"oUser123"}
    assert {m["touser"] for m in delivered} == {"oUser123"} and all(m["msgtype"] == "text" for m in delivered)
    assert platform.tokens[:2] == ["T1", "T2"]  # the expired token was renewed once, and kept
    assert registered.status_code in (200, 201), registered.text
    assert failed["reason"] == "outside_window" and failed["channel"] == "wechat"
    assert by_sms["to"] == {"phone": "+8613800138099"} and by_sms["kind"] == "receipt"
    assert by_sms["message_id"] == f"{failed['message_id']}.via.sms"


async def test_sms_webhooks_signed_by_twilio_become_requests_and_statuses_become_events(nats_server, js) -> None:
    platform = Platform()
    settings = common_settings(nats_server.url, config_dir=CONFIG)
    public = "https://kefu.example.cn/gateway"  # what Twilio is configured with: a proxy in front of kefu
    validator = RequestValidator(AUTH)
    async with serving(twilio_api(platform)) as api_base, \
            running(intake_app, IntakeSettings(**settings)), running(routing_app, RoutingSettings(**settings)), \
            running(gateway_app, GatewaySettings(**settings, platforms="sms", sms_account_sid=ACCOUNT, sms_auth_token=AUTH,
                                                 sms_from="+861069000000", sms_api_base=api_base,
                                                 sms_public_url=public)) as gateway, \
            httpx.AsyncClient(base_url=gateway.base_url) as twilio, \
            tap(nats_server.url, s.STREAM_EVENTS, s.EVENTS_ALL) as events:
        form = {"MessageSid": "SM-gw-1", "AccountSid": ACCOUNT, "From": "+8613800138022", "To": "+861069000000",
                "Body": "我的快递丢了", "NumMedia": "0"}
        signature = validator.compute_signature(f"{public}/sms", form)
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        accepted = [await twilio.post("/sms", content=urlencode(form), headers=headers) for _ in range(2)]
        unsigned = await twilio.post("/sms", content=urlencode(form | {"MessageSid": "SM-gw-x"}),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        tampered = await twilio.post("/sms", content=urlencode(form | {"Body": "改过的"}), headers=headers)
        received = (await events.wait_for(s.REQUEST_RECEIVED, source_id="SM-gw-1"))[0]
        receipt = (await sent(platform, 1))[0]
        callback = receipt["StatusCallback"]
        status_form = {"MessageSid": "SM0001", "MessageStatus": "delivered", "AccountSid": ACCOUNT}
        status = await twilio.post(callback.removeprefix(public), content=urlencode(status_form), headers={
            "X-Twilio-Signature": validator.compute_signature(callback, status_form),
            "Content-Type": "application/x-www-form-urlencoded"})
        delivered = (await events.wait_for(s.OUTBOUND_DELIVERED))[0]
        await js.publish(s.outbound_subject(Channel.sms), OutboundMessage(
            message_id="reply.req_test.2", request_id=None, channel=Channel.sms, kind="reply",
            to={"phone": "+15005550001"}, language=Language.zh, text="您好").model_dump_json().encode(),
            headers={"Nats-Msg-Id": "reply.req_test.2"})
        refused = (await events.wait_for(s.OUTBOUND_FAILED, message_id="reply.req_test.2"))[0]
    # no public URL configured (no proxy in front): the URL as the request arrived is what is signed
    async with running(gateway_app, GatewaySettings(**settings, platforms="sms", sms_auth_token=AUTH)) as direct, \
            httpx.AsyncClient(base_url=direct.base_url) as twilio:
        form2 = form | {"MessageSid": "SM-gw-direct"}
        direct_ok = await twilio.post("/sms", content=urlencode(form2), headers={
            "X-Twilio-Signature": validator.compute_signature(f"{direct.base_url}/sms", form2),
            "Content-Type": "application/x-www-form-urlencoded"})
        direct_proxied = await twilio.post("/sms", content=urlencode(form2), headers={
            "X-Twilio-Signature": validator.compute_signature(f"{public}/sms", form2),
            "Content-Type": "application/x-www-form-urlencoded"})
    assert direct_ok.status_code == 200 and direct_proxied.status_code == 403

    assert [r.status_code for r in accepted] == [200, 200] and "<Response>" in accepted[0].text
    assert unsigned.status_code == 403 and tampered.status_code == 403
    assert received["customer"]["phone"] == "+8613800138022" and len(events.of(s.REQUEST_RECEIVED)) == 1
    assert receipt["To"] == "+8613800138022" and receipt["From"] == "+861069000000" and receipt["Body"]
    assert status.status_code == 200 and status.json()["published"] == "delivered"
    assert delivered["channel"] == "sms" and delivered["message_id"] == callback.split("message_id=")[1].split("&")[0]
    assert delivered["request_id"] == received["request_id"]
    assert refused["reason"] == "refused" and "21211" in refused["detail"]
