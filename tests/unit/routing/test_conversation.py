"""Routing's half of conversations as pure transitions: a follow-up appended (resumes, reopens,
tells the holder, once), an agent's reply in the thread (first response, e-mail thread ids), and
the lookup index (tests of its SQL on a real SQLite)."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.metrics.lookup import CursorError, LookupIndex, Query, Scope, tokens
from services.routing.domain import lifecycle as lc
from services.routing.domain.messages import Templates
from services.routing.domain.route import route_request
from services.routing.domain.rules import RoutingConfig
from shared.config import ConfigError, load_yaml_model
from shared.contract import subjects as s
from shared.contract.conversation import RequestMessage, request_named, short_ref
from shared.contract.enums import Channel, Language
from shared.contract.models import CustomerRef, RequestReceived

CONFIG = Path(__file__).parents[3] / "config"
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai


@pytest.fixture(scope="module")
def config() -> RoutingConfig:
    return RoutingConfig.load(CONFIG)


def ctx(config: RoutingConfig, now: datetime = T0) -> lc.Context:
    return lc.Context(now=now, sla=config.sla, templates=load_yaml_model(CONFIG / "messages.yaml", Templates),
                      offer_timeout=timedelta(minutes=2), max_offers=2, mail_domain="support.example.cn")


def mail_request(config: RoutingConfig):
    request = RequestReceived(
        request_id="req_" + "c" * 26, channel=Channel.email, source_id="first@example.cn", received_at=T0,
        customer=CustomerRef(customer_id="c-1", email="wang@example.cn", reachable=["email"]),
        subject="发票", body="请问会员积分怎么查询", language=Language.zh)
    return route_request(request, rules=config, ctx=ctx(config))


def follow_up(record, source_id: str = "second@example.cn", text: str = "还有消息吗") -> RequestMessage:
    return RequestMessage(request_id=record.request_id, channel=Channel.email, source_id=source_id, text=text,
                          received_at=T0 + timedelta(hours=1), matched_by="reply_to", message_id=source_id)


def subjects(record) -> list[str]:
    return [i.subject for i in record.outbox]


def test_every_mail_kefu_sends_carries_its_thread(config) -> None:
    record = mail_request(config)
    receipt = next(i for i in record.outbox if i.subject == "kefu.outbound.email")
    thread = receipt.payload["thread"]
    assert request_named(thread["message_id"]) == record.request_id
    assert thread["message_id"].endswith("@support.example.cn>")
    assert thread["in_reply_to"] == "<first@example.cn>"
    assert f"[{short_ref(record.request_id)}]" in thread["subject"]
    assert receipt.payload["automatic"] is True


def test_a_follow_up_is_appended_once_and_tells_the_holder(config) -> None:
    record = lc.accept(mail_request(config), ctx(config), agent_id="a-1")
    changed = lc.customer_message(record, ctx(config), message=follow_up(record))
    assert [m.kind for m in changed.messages] == ["receipt", "followup"]  # the request itself: in `request`
    told = [i for i in changed.outbox if i.subject == s.REQUEST_CUSTOMER_WROTE]
    assert told[-1].payload["agent_id"] == "a-1" and told[-1].payload["reopened"] is False
    assert lc.customer_message(changed, ctx(config), message=follow_up(record)) is changed  # the same again


def test_a_follow_up_resumes_a_pending_request(config) -> None:
    record = lc.set_pending(lc.accept(mail_request(config), ctx(config), agent_id="a-1"), ctx(config),
                            actor="a-1", reason="waiting for the invoice number")
    later = ctx(config, T0 + timedelta(hours=2))
    changed = lc.customer_message(record, later, message=follow_up(record))
    assert changed.state == "accepted" and changed.sla.paused_since is None
    assert s.REQUEST_RESUMED in subjects(changed)


def test_a_follow_up_reopens_a_resolved_request_with_fresh_deadlines(config) -> None:
    record = lc.resolve(lc.accept(mail_request(config), ctx(config), agent_id="a-1"), ctx(config),
                        actor="a-1", resolution="已开票", first_contact=True)
    next_day = ctx(config, T0 + timedelta(days=1))
    changed = lc.customer_message(record, next_day, message=follow_up(record, text="发票金额不对"))
    assert changed.state == "queued" and changed.agent_id is None
    reopened = next(i for i in changed.outbox if i.subject == s.REQUEST_REOPENED)
    assert reopened.payload["reason"] == "customer_wrote" and reopened.payload["counted_accurate"] is True
    assert changed.sla.deadlines["first_response"].due > next_day.now
    assert changed.priority == record.priority  # the customer writing again raises nothing by itself


def test_a_reply_goes_out_in_the_thread_and_is_a_first_response(config) -> None:
    record = mail_request(config)
    record = lc.customer_message(record, ctx(config), message=follow_up(record))
    replied = lc.reply(record, ctx(config, T0 + timedelta(minutes=5)), actor="a-1", text="已经在处理")
    out = next(i for i in replied.outbox if i.subject == "kefu.outbound.email" and i.payload["kind"] == "reply")
    assert out.payload["automatic"] is False
    assert out.payload["thread"]["in_reply_to"] == "<second@example.cn>"
    assert out.payload["thread"]["references"] == ["<first@example.cn>", "<second@example.cn>"]
    assert not replied.sla.deadlines["first_response"].open
    event = next(i for i in replied.outbox if i.subject == s.REQUEST_REPLIED)
    assert event.payload["message_id"] == out.payload["message_id"]
    assert [m.kind for m in replied.messages][-1] == "reply"
    with pytest.raises(lc.InvalidTransition):
        lc.reply(lc.close(replied, ctx(config), actor="a-1", reason=None), ctx(config), actor="a-1", text="x")
    resolved = lc.resolve(replied, ctx(config), actor="a-1", resolution="已重新开票", first_contact=False)
    assert [(m["kind"], m["text"]) for m in resolved.public()["messages"]][-1] == ("result", "已重新开票")


def test_public_view_lists_the_conversation_in_order(config) -> None:
    record = mail_request(config)
    record = lc.reply(lc.customer_message(record, ctx(config), message=follow_up(record)), ctx(config),
                      actor="a-1", text="好的")
    shown = record.public()["messages"]
    assert [(m["direction"], m["kind"]) for m in shown] == [("in", "request"), ("out", "receipt"),
                                                             ("in", "followup"), ("out", "reply")]


# -- the lookup index --------------------------------------------------------------------------------
def received(rid: str, at: str, **customer: str) -> tuple[str, bytes]:
    return s.REQUEST_RECEIVED, json.dumps({"request_id": rid, "received_at": at, "channel": "sms",
                                           "customer": customer, "subject": None,
                                           "body": "厨房漏水了，请尽快处理 water leak"}).encode()


def rid(n: int) -> str:
    return "req_" + f"{n:03d}".replace("0", "a").replace("1", "b").replace("8", "c").replace("9", "d") + "e" * 23


def index_of(events: list[tuple[str, bytes]]) -> LookupIndex:
    index = LookupIndex()
    index.apply_batch([(i + 1, subj, data) for i, (subj, data) in enumerate(events)])
    return index


ALL = Scope(everything=True)


def test_tokens_split_chinese_into_pairs() -> None:
    assert tokens("厨房漏水 Water-leak") == ["厨房", "房漏", "漏水", "water", "leak"]


def test_lookup_by_contact_customer_ref_words_and_state() -> None:
    events = [received(rid(1), "2026-12-01T01:00:00+00:00", customer_id="c-1", phone="+8613900001111"),
              received(rid(2), "2026-12-02T01:00:00+00:00", customer_id="c-2", phone="+8613900002222"),
              (s.REQUEST_ASSIGNED, json.dumps({"request_id": rid(2), "department": "business",
                                               "co_departments": [], "queue": "business.normal"}).encode()),
              (s.REQUEST_CLOSED, json.dumps({"request_id": rid(1)}).encode()),
              (s.REQUEST_MESSAGE, json.dumps({"request_id": rid(1), "text": "还有燃气味"}).encode())]
    index = index_of(events)
    ids = lambda q, scope=ALL: [r["request_id"] for r in index.find(q, scope)[0]]  # noqa: E731
    assert ids(Query(contact="139 0000 1111")) == [rid(1)]
    assert ids(Query(contact="+86 139-0000-2222")) == [rid(2)]
    assert ids(Query(customer_id="c-2")) == [rid(2)]
    assert ids(Query(ref=f"[{short_ref(rid(1))}]")) == [rid(1)]
    assert ids(Query(q="漏水")) == [rid(2), rid(1)]
    assert ids(Query(q="Leak")) == [rid(2), rid(1)]
    assert ids(Query(q="漏电")) == []
    assert ids(Query(q="燃气")) == [rid(1)]  # words of a follow-up
    assert ids(Query(q="漏水", customer_id="c-1")) == [rid(1)]
    assert ids(Query(state="closed")) == [rid(1)]
    assert ids(Query(queue="business.normal")) == [rid(2)]
    # scope: a business supervisor sees business requests; an agent also those they hold
    assert ids(Query(), Scope(everything=False, departments=("business",))) == [rid(2)]
    assert ids(Query(), Scope(everything=False, departments=("hr",))) == []


def test_pages_follow_the_cursor_newest_first() -> None:
    index = index_of([received(rid(n), f"2026-12-0{n}T01:00:00+00:00", customer_id="c-1") for n in range(1, 8)])
    seen, cursor = [], None
    while True:
        rows, cursor = index.find(Query(customer_id="c-1", limit=3, cursor=cursor), ALL)
        seen += [r["request_id"] for r in rows]
        if cursor is None:
            break
    assert seen == [rid(n) for n in range(7, 0, -1)]
    with pytest.raises(CursorError):
        index.find(Query(cursor="bm90IGEgY3Vyc29y"), ALL)


def test_the_index_resumes_from_its_position_and_ignores_what_it_applied(tmp_path: Path) -> None:
    path = str(tmp_path / "index.sqlite")
    index = LookupIndex(path)
    index.apply_batch([(1, *received(rid(1), "2026-12-01T01:00:00+00:00", customer_id="c-1"))])
    index.close()
    again = LookupIndex(path)
    assert again.position() == 1
    again.apply_batch([(1, *received(rid(1), "2026-12-01T01:00:00+00:00", customer_id="c-1")),
                       (2, *received(rid(2), "2026-12-02T01:00:00+00:00", customer_id="c-1"))])
    assert [r["request_id"] for r in again.find(Query(customer_id="c-1"), ALL)[0]] == [rid(2), rid(1)]


def open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def test_the_default_index_lives_in_a_temporary_file_opened_at_start() -> None:
    # SQLite's private temporary database (path ""): only its page cache is in memory, so metrics'
    # memory does not grow with the log (make soak); ":memory:" journals in memory, a file does not
    before = open_files()
    index = LookupIndex()
    assert index.db.execute("pragma journal_mode").fetchone()[0] != "memory"
    assert LookupIndex(":memory:").db.execute("pragma journal_mode").fetchone()[0] == "memory"
    # its file is open (and already unlinked) once the index is made: an unwritable temp directory
    # fails the start, not the replay later
    assert any(f.endswith("(deleted)") for f in open_files() - before)
    assert index.db.execute("pragma cache_size").fetchone()[0] == -2000  # SQLite's default again


def test_an_index_file_that_cannot_be_opened_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"KEFU_METRICS_INDEX_PATH.*missing/index\.sqlite"):
        LookupIndex(str(tmp_path / "missing" / "index.sqlite"))


def wechat_request(config: RoutingConfig, *, reachable: list[str]):
    request = RequestReceived(
        request_id="req_" + "d" * 26, channel=Channel.wechat, source_id="2461100009", received_at=T0,
        customer=CustomerRef(customer_id="c-2", wechat_openid="o_old", phone="+8613800138099", email="li@example.cn",
                             reachable=reachable),
        body="请问会员积分怎么查询", language=Language.zh)
    return route_request(request, rules=config, ctx=ctx(config))


def test_a_message_wechat_refuses_for_its_window_goes_once_to_the_customers_phone(config) -> None:
    from shared.contract.conversation import OutboundFailed

    record = lc.reply(wechat_request(config, reachable=["wechat_openid", "phone"]), ctx(config), actor="a-1",
                      text="积分在“我的”页面查看")
    sent = next(m for m in record.messages if m.kind == "reply")
    failed = OutboundFailed(message_id=sent.message_id, request_id=record.request_id, channel=Channel.wechat,
                            reason="outside_window", detail="45015")
    again = lc.undelivered(record, ctx(config), failed=failed)
    item = next(i for i in again.outbox if i.subject == s.outbound_subject(Channel.sms))
    assert item.payload["to"] == {"phone": "+8613800138099"} and item.payload["text"] == "积分在“我的”页面查看"
    assert item.payload["message_id"] == f"{sent.message_id}.via.sms" and item.payload["kind"] == "reply"
    assert again.history[-1].action == "undelivered" and again.history[-1].detail["sent_again_on"] == "sms"
    assert lc.undelivered(again, ctx(config), failed=failed) is again  # the same failure twice: once
    # the second try failing too is not tried a third time; a refusal for good is only recorded
    twice = lc.undelivered(again, ctx(config), failed=failed.model_copy(update={
        "message_id": f"{sent.message_id}.via.sms", "channel": Channel.sms}))
    assert not any(i.subject.startswith("kefu.outbound") for i in twice.outbox[len(again.outbox):])
    refused = lc.undelivered(record, ctx(config), failed=failed.model_copy(update={"reason": "refused"}))
    assert "sent_again_on" not in refused.history[-1].detail


def test_never_to_a_contact_the_customer_did_not_prove(config) -> None:
    from shared.contract.conversation import OutboundFailed

    record = lc.reply(wechat_request(config, reachable=["wechat_openid"]), ctx(config), actor="a-1", text="您好")
    sent = next(m for m in record.messages if m.kind == "reply")
    again = lc.undelivered(record, ctx(config), failed=OutboundFailed(
        message_id=sent.message_id, request_id=record.request_id, channel=Channel.wechat, reason="outside_window"))
    assert [i.subject for i in again.outbox if i.subject.startswith("kefu.outbound")] == \
        [i.subject for i in record.outbox if i.subject.startswith("kefu.outbound")]
    assert "sent_again_on" not in again.history[-1].detail
