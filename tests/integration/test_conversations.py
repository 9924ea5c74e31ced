"""Conversations on a real nats-server with the real services (docs/conversations.md): follow-ups
appended per channel, replies in the thread built by Python's `email` package as a mail client
would, machines ignored, never across customers, exactly once, and requests found again."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest

from services.intake.domain.threading import SenderThreads
from shared.contract import subjects as s
from shared.contract.conversation import request_named, short_ref
from shared.privacy import contact_key
from tests.support.services import ADAPTER_KEY, RunningService, Tap, staff_token, tap, wait_until

pytestmark = pytest.mark.integration
WINDOWS = {"conversation_windows": "wechat=72h,sms=72h,app=72h"}


@asynccontextmanager
async def services(start: Any, **extra: Any) -> AsyncIterator[tuple[RunningService, RunningService]]:
    async with start["intake"](**WINDOWS, **extra) as intake, start["routing"](**extra) as routing:
        yield intake, routing


async def post(intake: RunningService, channel: str, body: bytes) -> tuple[int, dict[str, Any]]:
    media = {"email": "message/rfc822", "sms": "application/x-www-form-urlencoded", "wechat": "application/xml"}
    async with intake.client(ADAPTER_KEY) as http:
        response = await http.post(f"/v1/intake/{channel}", content=body,
                                   headers={"Content-Type": media.get(channel, "application/json")})
    return response.status_code, response.json()


def sms(sid: str, text: str, sender: str = "13900001111") -> bytes:
    return urllib.parse.urlencode({"MessageSid": sid, "From": sender, "To": "106900001", "Body": text}).encode()


def wechat(msg_id: str, text: str, openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o") -> bytes:
    now = int(datetime.now(UTC).timestamp())
    return (f"<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
            f"<MsgId>{msg_id}</MsgId></xml>").encode()


def first_mail(sender: str = "wangfang@example.cn", subject: str = "发票还没收到") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"王芳 <{sender}>"
    msg["To"] = "service@example.cn"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="example.cn")
    msg.set_content("上个月的发票一直没有收到，请帮忙查一下。", charset="utf-8")
    return msg


def reply_to(thread: dict[str, Any], text: str, sender: str = "wangfang@example.cn") -> EmailMessage:
    """The customer's answer as a mail client writes it: In-Reply-To the mail it answers, References
    the thread, the subject it showed."""
    msg = EmailMessage()
    msg["From"] = f"王芳 <{sender}>"
    msg["To"] = "service@example.cn"
    msg["Subject"] = thread["subject"] if thread["subject"].lower().startswith("re:") else f"Re: {thread['subject']}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="example.cn")
    msg["In-Reply-To"] = thread["message_id"]
    msg["References"] = " ".join([*thread["references"], thread["message_id"]])
    msg.set_content(f"{text}\n\n> 以上是客服的回复", charset="utf-8")
    return msg


async def agent(routing: RunningService, agent_id: str = "a-biz") -> str:
    async with routing.client() as admin:
        response = await admin.put(f"/v1/agents/{agent_id}", json={
            "name": agent_id, "department": "business", "queues": ["business.normal", "business.important",
                                                                   "business.urgent"],
            "capacity": 5, "status": "available", "languages": ["zh", "en"]})
        assert response.status_code in (200, 201), response.text
        return await staff_token(admin, agent_id)


# -- by contact ---------------------------------------------------------------------------------------
async def test_a_second_wechat_message_is_appended_without_a_second_receipt(start, events: Tap, outbound: Tap) -> None:
    async with services(start) as (intake, _):
        status, first = await post(intake, "wechat", wechat("7001", "我的订单一直没有发货"))
        assert (status, first["status"]) == (202, "accepted")
        await outbound.wait_for("kefu.outbound.wechat", kind="receipt", request_id=first["request_id"])
        status, second = await post(intake, "wechat", wechat("7002", "订单号是 88231"))
        assert (status, second) == (202, {"status": "appended", "request_id": first["request_id"]})
        message = (await events.wait_for(s.REQUEST_MESSAGE, request_id=first["request_id"]))[0]
        assert (message["matched_by"], message["text"], message["source_id"]) == ("contact", "订单号是 88231", "7002")
        await events.wait_for(s.REQUEST_CUSTOMER_WROTE, request_id=first["request_id"])
    assert len(events.of(s.REQUEST_RECEIVED)) == 1
    assert len(outbound.of("kefu.outbound.wechat", kind="receipt")) == 1


async def test_another_contact_is_another_request(start, events: Tap) -> None:
    async with services(start) as (intake, _):
        _, one = await post(intake, "sms", sms("SM-c1", "宽带断了"))
        _, other = await post(intake, "sms", sms("SM-c2", "宽带断了", sender="13900002222"))
    assert one["status"] == other["status"] == "accepted" and one["request_id"] != other["request_id"]


async def test_a_follow_up_resumes_a_pending_request(start, events: Tap) -> None:
    async with services(start) as (intake, routing):
        token = await agent(routing)
        _, first = await post(intake, "sms", sms("SM-p1", "请问积分怎么兑换"))
        rid = first["request_id"]
        async with routing.client(token) as http:
            await wait_until(lambda: _state(http, rid, "offered", "accepted"), what="offered")
            assert (await http.post(f"/v1/requests/{rid}/accept", json={})).status_code == 200
            assert (await http.post(f"/v1/requests/{rid}/pending", json={"reason": "会员号?"})).status_code == 200
            _, second = await post(intake, "sms", sms("SM-p2", "会员号 10086"))
            assert second == {"status": "appended", "request_id": rid}
            await events.wait_for(s.REQUEST_RESUMED, request_id=rid)
            record = (await http.get(f"/v1/requests/{rid}")).json()
    assert record["state"] == "accepted"
    assert [m["kind"] for m in record["messages"] if m["direction"] == "in"] == ["request", "followup"]


async def _state(http: Any, rid: str, *states: str) -> bool:
    response = await http.get(f"/v1/requests/{rid}")
    return response.status_code == 200 and response.json()["state"] in states


# -- e-mail threads, as a mail client writes them ------------------------------------------------------
async def test_mail_threads_both_ways_and_machines_are_never_answered(start, events: Tap, outbound: Tap) -> None:
    async with services(start) as (intake, routing):
        token = await agent(routing)
        mail = first_mail()
        _, first = await post(intake, "email", bytes(mail))
        rid = first["request_id"]
        receipt = (await outbound.wait_for("kefu.outbound.email", kind="receipt", request_id=rid))[0]
        thread = receipt["thread"]
        assert thread["in_reply_to"] == mail["Message-ID"] and request_named(thread["message_id"]) == rid
        assert f"[{short_ref(rid)}]" in thread["subject"]

        # the customer answers the receipt from their mail client
        answer = reply_to(thread, "发票抬头是 ABC 公司")
        status, body = await post(intake, "email", bytes(answer))
        assert (status, body) == (202, {"status": "appended", "request_id": rid})
        assert (await events.wait_for(s.REQUEST_MESSAGE, request_id=rid))[0]["matched_by"] == "reply_to"

        # the agent answers in the thread; the customer's answer to that comes back too
        async with routing.client(token) as http:
            await wait_until(lambda: _state(http, rid, "offered"), what="offered")
            replied = await http.post(f"/v1/requests/{rid}/reply", json={"text": "已经重新开具，请查收"})
            assert replied.status_code == 200, replied.text
        out = (await outbound.wait_for("kefu.outbound.email", kind="reply", request_id=rid))[0]
        assert out["thread"]["in_reply_to"] == answer["Message-ID"]
        assert mail["Message-ID"] in out["thread"]["references"]
        await events.wait_for(s.REQUEST_REPLIED, request_id=rid)
        again = reply_to(out["thread"], "收到了，谢谢")
        assert (await post(intake, "email", bytes(again)))[1] == {"status": "appended", "request_id": rid}

        # the customer's vacation auto-reply to kefu's answer: kept, ignored, never answered
        vacation = reply_to(out["thread"], "我正在休假，12 月 10 日回来。")
        vacation.replace_header("Subject", "自动回复: " + out["thread"]["subject"])
        vacation["Auto-Submitted"] = "auto-replied"
        status, body = await post(intake, "email", bytes(vacation))
        assert (status, body) == (200, {"status": "ignored", "detail": "auto_generated"})
        ignored = (await events.wait_for(s.MESSAGE_IGNORED))[0]
        assert ignored["reason"] == "auto_generated" and ignored["raw"]["stream"] == s.STREAM_REJECTED

        # a bounce of kefu's reply names it: outbound.failed
        bounce = EmailMessage()
        bounce["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.cn>"
        bounce["To"] = "service@example.cn"
        bounce["Subject"] = "Undelivered Mail Returned to Sender"
        bounce["Message-ID"] = make_msgid(domain="mx.example.cn")
        bounce.set_content("This is the mail system. I'm sorry to have to inform you ...")
        returned = EmailMessage()
        returned["Message-ID"] = out["thread"]["message_id"]
        returned["Subject"] = out["thread"]["subject"]
        returned.set_content(out["text"])
        bounce.add_attachment(returned)
        status, body = await post(intake, "email", bytes(bounce))
        assert status == 200 and body["status"] == "ignored"
        failed = (await events.wait_for(s.OUTBOUND_FAILED))[0]
        assert (failed["message_id"], failed["request_id"]) == (out["message_id"], rid)
        await events.wait_for(s.MESSAGE_IGNORED, count=2)
    # one request; the three customer mails in it; nothing sent after the agent's reply
    assert [e["request_id"] for e in events.of(s.REQUEST_RECEIVED)] == [rid]
    assert len(events.of(s.REQUEST_MESSAGE, request_id=rid)) == 2
    assert [m["kind"] for m in outbound.of("kefu.outbound.email")] == ["receipt", "reply"]


async def test_never_attached_to_another_customers_request(start, events: Tap, outbound: Tap) -> None:
    async with services(start) as (intake, _):
        _, victim = await post(intake, "email", bytes(first_mail("victim@example.cn")))
        thread = (await outbound.wait_for("kefu.outbound.email", kind="receipt",
                                          request_id=victim["request_id"]))[0]["thread"]
        # a reply naming the victim's thread, from another address: a new request of its own
        _, forged = await post(intake, "email", bytes(reply_to(thread, "我也要退款", sender="mallory@example.net")))
        # the victim's [ref] in the subject, from an address kefu never saw
        stranger = first_mail("stranger@example.org", subject=f"关于 [{short_ref(victim['request_id'])}]")
        _, by_ref = await post(intake, "email", bytes(stranger))
        # a reply naming a Message-ID nobody knows
        unknown = reply_to({"subject": "Re: 你好", "message_id": "<nobody@nowhere>", "references": []}, "hello",
                          sender="victim@example.cn")
        _, by_unknown = await post(intake, "email", bytes(unknown))
    for answer in (forged, by_ref, by_unknown):
        assert answer["status"] == "accepted" and answer["request_id"] != victim["request_id"]
    assert events.of(s.REQUEST_MESSAGE) == []


async def test_resolved_reopens_and_closed_makes_a_follow_up_request(start, events: Tap, outbound: Tap, js) -> None:
    async with services(start) as (intake, routing):
        token = await agent(routing)
        _, first = await post(intake, "email", bytes(first_mail("li@example.cn")))
        rid = first["request_id"]
        thread = (await outbound.wait_for("kefu.outbound.email", kind="receipt", request_id=rid))[0]["thread"]
        async with routing.client(token) as http:
            await wait_until(lambda: _state(http, rid, "offered"), what="offered")
            assert (await http.post(f"/v1/requests/{rid}/accept", json={})).status_code == 200
            assert (await http.post(f"/v1/requests/{rid}/resolve", json={"resolution": "已补开"})).status_code == 200
            _, body = await post(intake, "email", bytes(reply_to(thread, "还是没收到", sender="li@example.cn")))
            assert body == {"status": "appended", "request_id": rid}
            reopened = (await events.wait_for(s.REQUEST_REOPENED, request_id=rid))[0]
            assert reopened["reason"] == "customer_wrote"
            await wait_until(lambda: _state(http, rid, "queued", "offered"), what="reopened")
            assert (await http.post(f"/v1/requests/{rid}/close", json={"reason": "done"})).status_code == 200
        await events.wait_for(s.REQUEST_CLOSED, request_id=rid)

        threads = await js.key_value(s.BUCKET_THREADS)

        async def closed_in_intake() -> bool:  # intake's consumer has taken the close
            entry = await threads.get("s." + contact_key("email", "li@example.cn"))
            return SenderThreads.model_validate_json(entry.value).threads[0].state == "closed"
        await wait_until(closed_in_intake, what="intake knows the request is closed")
        _, later = await post(intake, "email", bytes(reply_to(thread, "再问一次", sender="li@example.cn")))
        assert later["status"] == "accepted" and later["request_id"] != rid
    received = events.of(s.REQUEST_RECEIVED, request_id=later["request_id"])[0]
    assert received["follow_up_of"] == rid


# -- web chat -----------------------------------------------------------------------------------------
async def test_a_longer_chat_transcript_appends_only_its_new_lines(start, events: Tap) -> None:
    def transcript(*lines: str) -> bytes:
        said = [{"from": "visitor" if i % 2 == 0 else "agent", "text": t, "at": "2026-12-05T10:00:00+08:00"}
                for i, t in enumerate(lines)]
        return json.dumps({"session_id": "chat-77", "visitor": {"name": "Anna"}, "messages": said}).encode()

    async with services(start) as (intake, _):
        _, first = await post(intake, "web", transcript("my fridge stopped", "which model?"))
        _, again = await post(intake, "web", transcript("my fridge stopped", "which model?"))
        _, longer = await post(intake, "web", transcript("my fridge stopped", "which model?", "BCD-215", "ok",
                                                         "and it beeps"))
        assert again == {"status": "duplicate", "request_id": first["request_id"]}
        assert longer == {"status": "appended", "request_id": first["request_id"]}
        message = (await events.wait_for(s.REQUEST_MESSAGE))[0]
    assert message["text"] == "BCD-215\nand it beeps" and message["matched_by"] == "session"


# -- exactly once ------------------------------------------------------------------------------------
async def test_a_follow_up_delivered_twice_over_http_and_nats_across_restarts_is_appended_once(
        start, events: Tap, js) -> None:
    async with services(start) as (intake, _):
        _, first = await post(intake, "sms", sms("SM-x1", "路由器坏了"))
        assert (await post(intake, "sms", sms("SM-x2", "型号 AX3000")))[1]["status"] == "appended"
    await js.publish("kefu.intake.sms", sms("SM-x2", "型号 AX3000"))  # the adapter's retry over NATS
    async with services(start) as (intake, routing):
        assert (await post(intake, "sms", sms("SM-x2", "型号 AX3000")))[1] == \
            {"status": "duplicate", "request_id": first["request_id"]}
        async with routing.client() as admin:
            async def appended() -> list[Any] | None:
                record = (await admin.get(f"/v1/requests/{first['request_id']}")).json()
                ins = [m for m in record.get("messages", []) if m["kind"] == "followup"]
                return ins or None
            followups = await wait_until(appended, what="the follow-up in the record")
        await events.wait_for(s.REQUEST_MESSAGE)
    assert len(followups) == 1
    assert len(events.of(s.REQUEST_MESSAGE)) == 1 and len(events.of(s.REQUEST_RECEIVED)) == 1


# -- lookup -------------------------------------------------------------------------------------------
async def test_requests_are_found_by_contact_ref_words_and_scope(start, nats_server) -> None:
    async with services(start) as (intake, routing), start["metrics"]() as metrics, \
            tap(nats_server.url, s.STREAM_AUDIT, s.AUDIT_ALL) as audit:
        _, one = await post(intake, "sms", sms("SM-l1", "厨房漏水了，请尽快上门", sender="13900003333"))
        _, two = await post(intake, "email", bytes(first_mail("zhao@example.cn", subject="积分兑换")))
        async with routing.client() as admin:
            hr = await staff_token(admin, "sup-hr", role="supervisor", departments=["hr"])
        async with metrics.client() as admin:

            async def found(**params: str) -> list[str] | None:
                response = await admin.get("/v1/requests", params=params)
                assert response.status_code == 200, response.text
                return [r["request_id"] for r in response.json()["requests"]] or None

            assert await wait_until(lambda: found(contact="139 0000 3333"), what="by phone") == [one["request_id"]]
            assert await wait_until(lambda: found(contact="ZHAO@example.cn"), what="by mail") == [two["request_id"]]
            assert await found(ref=short_ref(one["request_id"])) == [one["request_id"]]
            assert await found(q="漏水") == [one["request_id"]]
            page = (await admin.get("/v1/requests", params={"limit": 1})).json()
            assert len(page["requests"]) == 1 and page["cursor"]
            rest = (await admin.get("/v1/requests", params={"limit": 1, "cursor": page["cursor"]})).json()
            assert rest["requests"][0]["request_id"] != page["requests"][0]["request_id"]
            bad = await admin.get("/v1/requests", params={"cursor": "garbage"})
            assert bad.status_code == 422 and bad.json()["error"] == "invalid_cursor"
        async with metrics.client(hr) as http:
            assert (await http.get("/v1/requests", params={"q": "漏水"})).json()["requests"] == []
        searches = await audit.wait_for("kefu.audit.request.search", count=5)
    assert any(one["request_id"] in r["object_id"] for r in searches)  # who searched, and what they got
    assert {r["actor"] for r in searches} == {"admin", "sup-hr"}


# -- the loop guard -------------------------------------------------------------------------------------
async def test_the_loop_guard_holds_automatic_messages_to_one_address_but_not_a_persons_reply(
        start, events: Tap, outbound: Tap) -> None:
    """Whatever the headers said: a third automatic message to one address within the hour is held
    back (a mail loop with a machine that looks like a person is cut after two receipts)."""
    async with services(start, outbound_automatic_per_hour=2) as (intake, routing):
        token = await agent(routing)
        rids = []
        for n in range(3):  # three new mails (no reply, no ref): three requests, three receipts due
            _, answer = await post(intake, "email", bytes(first_mail("loop@example.cn", subject=f"问题 {n}")))
            rids.append(answer["request_id"])
        await events.wait_for(s.REQUEST_ASSIGNED, count=3)
        async with routing.client() as admin:
            async def held() -> bool:
                text = (await admin.get("/metrics")).text
                return 'kefu_outbound_held_total{kind="receipt"} 1.0' in text
            await wait_until(held, what="the third receipt held back")
        async with routing.client(token) as http:
            await wait_until(lambda: _state(http, rids[2], "offered"), what="offered")
            assert (await http.post(f"/v1/requests/{rids[2]}/reply", json={"text": "您好"})).status_code == 200
        await outbound.wait_for("kefu.outbound.email", kind="reply", request_id=rids[2])
    assert len(outbound.of("kefu.outbound.email", kind="receipt")) == 2


async def test_a_chat_session_from_before_conversations_stays_one_request(start, js) -> None:
    """kefu before conversations marked a chat session seen under its bare session id: after the
    upgrade, the same session's transcript is still that request's duplicate, not a new request."""
    from services.intake.domain.canonical import request_id_for, source_key
    from shared.contract.enums import Channel

    old = request_id_for(Channel.web, "chat-legacy")
    sources = await js.key_value(s.BUCKET_INTAKE_SOURCES)
    await sources.put(source_key(Channel.web, "chat-legacy"), old.encode())
    body = json.dumps({"session_id": "chat-legacy", "messages": [{"from": "visitor", "text": "hello"}]}).encode()
    async with services(start) as (intake, _):
        assert await post(intake, "web", body) == (202, {"status": "duplicate", "request_id": old})
