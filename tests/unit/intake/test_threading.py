"""The threading decision (services/intake/domain/threading.py): a message and the sender's own
requests -> new | append(request, matched_by) | ignore(reason) | seen. Properties: a message is
only ever attached to a request of its own sender, and a redelivery finds its own decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.intake.domain.canonical import request_id_for
from services.intake.domain.threading import (
    Append,
    Claim,
    Ignore,
    Incoming,
    New,
    Policy,
    Seen,
    SenderThreads,
    ThreadRef,
    claim_for,
    claim_message,
    claimed,
    decide,
    hashed_id,
    parse_windows,
    record,
    touched,
)
from shared.contract.conversation import kefu_message_id, mail_thread, request_named, short_ref
from shared.contract.enums import Channel

NOW = datetime(2026, 12, 5, 10, tzinfo=UTC)
POLICY = Policy(windows=parse_windows("wechat=72h,sms=72h,app=72h"))
REQ = request_id_for(Channel.wechat, "MsgId-1")
MAIL_REQ = request_id_for(Channel.email, "first@example.cn")


def thread(request_id: str = REQ, channel: Channel = Channel.wechat, *, state: str = "open", ago: float = 1.0,
           lines: int = 0, mids: tuple[str, ...] = ()) -> ThreadRef:
    return ThreadRef(request_id=request_id, ref=short_ref(request_id), channel=channel, state=state,
                     last_activity=NOW - timedelta(hours=ago), lines=lines, message_ids=[hashed_id(m) for m in mids])


def msg(channel: Channel = Channel.wechat, text: str = "还有消息吗", *, references: tuple[str, ...] = (),
        lines: int | None = None, auto: str | None = None) -> Incoming:
    return Incoming(channel=channel, key="k2", source_id="s2", text=text, references=references, lines=lines,
                    auto=auto, at=NOW)


def of(*threads: ThreadRef) -> SenderThreads:
    return SenderThreads(threads=list(threads))


# -- by contact (WeChat, SMS, app) ------------------------------------------------------------------
def test_the_same_contact_within_the_window_appends() -> None:
    assert decide(msg(), of(thread()), POLICY, NOW) == Append(REQ, "contact")


def test_after_the_window_it_is_a_new_request() -> None:
    assert decide(msg(), of(thread(ago=73)), POLICY, NOW) == New()


def test_a_closed_request_in_the_window_makes_a_follow_up_request() -> None:
    assert decide(msg(), of(thread(state="closed")), POLICY, NOW) == New(follow_up_of=REQ)


def test_only_a_request_on_the_same_channel_continues_by_contact() -> None:
    sms = request_id_for(Channel.sms, "SM1")
    assert decide(msg(Channel.wechat), of(thread(sms, Channel.sms)), POLICY, NOW) == New()


def test_phone_and_walkin_are_new_unless_configured() -> None:
    call = request_id_for(Channel.phone, "call-1")
    assert decide(msg(Channel.phone), of(thread(call, Channel.phone)), POLICY, NOW) == New()
    phone = Policy(windows=parse_windows("phone=24h"))
    assert decide(msg(Channel.phone), of(thread(call, Channel.phone)), phone, NOW) == Append(call, "contact")


def test_the_newest_request_on_the_channel_is_the_one_continued() -> None:
    old = request_id_for(Channel.wechat, "MsgId-0")
    assert decide(msg(), of(thread(ago=2), thread(old, ago=1)), POLICY, NOW) == Append(REQ, "contact")


# -- e-mail: replies and references -----------------------------------------------------------------
def test_a_reply_to_kefus_own_mail_appends() -> None:
    ours = kefu_message_id(f"receipt.{MAIL_REQ}", "example.com").strip("<>")
    assert request_named(ours) == MAIL_REQ
    got = decide(msg(Channel.email, references=(ours,)), of(thread(MAIL_REQ, Channel.email)), POLICY, NOW)
    assert got == Append(MAIL_REQ, "reply_to")


def test_a_reply_to_the_customers_own_first_mail_appends() -> None:
    got = decide(msg(Channel.email, references=("first@example.cn",)), of(thread(MAIL_REQ, Channel.email)), POLICY, NOW)
    assert got == Append(MAIL_REQ, "reply_to")


def test_a_reply_to_a_later_mail_of_the_customer_appends() -> None:
    later = thread(MAIL_REQ, Channel.email, mids=("second@example.cn",))
    assert decide(msg(Channel.email, references=("second@example.cn",)), of(later), POLICY, NOW).kind == "append"


def test_a_reply_naming_an_unknown_message_id_is_new() -> None:
    assert decide(msg(Channel.email, references=("nobody@x",)), of(thread(MAIL_REQ, Channel.email)), POLICY,
                  NOW) == New()


def test_the_ref_in_the_subject_appends() -> None:
    text = f"Re: 发票 [{short_ref(MAIL_REQ)}]\n还没收到"
    assert decide(msg(Channel.email, text), of(thread(MAIL_REQ, Channel.email)), POLICY, NOW) == Append(MAIL_REQ, "ref")


def test_a_ref_typed_in_lower_case_appends() -> None:
    text = f"my request {short_ref(MAIL_REQ).lower()} again"
    assert decide(msg(Channel.email, text), of(thread(MAIL_REQ, Channel.email)), POLICY, NOW).kind == "append"


def test_a_reply_to_a_closed_request_makes_a_follow_up() -> None:
    closed = thread(MAIL_REQ, Channel.email, state="closed")
    assert decide(msg(Channel.email, references=("first@example.cn",)), of(closed), POLICY, NOW) == \
        New(follow_up_of=MAIL_REQ)


def test_a_mail_without_reply_or_ref_is_new_even_from_a_known_sender() -> None:
    assert decide(msg(Channel.email, "另一个问题"), of(thread(MAIL_REQ, Channel.email)), POLICY, NOW) == New()


# -- web chat ----------------------------------------------------------------------------------------
def test_a_longer_transcript_appends_its_new_lines() -> None:
    chat = request_id_for(Channel.web, "S1")
    assert decide(msg(Channel.web, lines=5), of(thread(chat, Channel.web, lines=3)), POLICY, NOW) == \
        Append(chat, "session", from_line=3)


def test_the_same_transcript_again_is_seen() -> None:
    chat = request_id_for(Channel.web, "S1")
    assert decide(msg(Channel.web, lines=3), of(thread(chat, Channel.web, lines=3)), POLICY, NOW) == Seen(chat)


# -- machines ----------------------------------------------------------------------------------------
def test_a_machine_is_ignored_whatever_it_names() -> None:
    got = decide(msg(Channel.email, references=("first@example.cn",), auto="Auto-Submitted: auto-replied"),
                 of(thread(MAIL_REQ, Channel.email)), POLICY, NOW)
    assert got == Ignore("auto_generated", "Auto-Submitted: auto-replied")


# -- recording and redelivery -----------------------------------------------------------------------
def test_a_claim_is_found_again_by_its_redelivery() -> None:
    made = claim_for(Append(REQ, "contact"), key="k2", new_request_id="unused")
    after = record(of(thread()), made, channel=Channel.wechat, at=NOW, lines=None, message_id=None)
    assert claimed(after, "k2") == made
    assert after.threads[0].last_activity == NOW


def test_the_step_over_the_senders_entry_claims_once_and_a_redelivery_writes_nothing() -> None:
    made, entry = claim_message(of(thread()), msg(), POLICY, NOW, message_id=None)
    assert made == Claim(key="k2", request_id=REQ, kind="append", matched_by="contact") and entry is not None
    assert claim_message(entry, msg(), POLICY, NOW, message_id=None) == (made, None)  # redelivered: nothing to write
    # a follow-up of a closed request: a new request named by the message, not by the old one's source
    made, entry = claim_message(of(thread(state="closed")), msg(), POLICY, NOW, message_id=None)
    assert (made.kind, made.follow_up_of, made.request_id) == ("new", REQ, request_id_for(Channel.wechat, "k2"))
    assert entry is not None and entry.threads[0].request_id == made.request_id
    chat = request_id_for(Channel.web, "S1")
    assert claim_message(of(thread(chat, Channel.web, lines=3)), msg(Channel.web, lines=3), POLICY, NOW,
                         message_id=None) == (Seen(chat), None)


def test_a_new_request_goes_first_and_the_list_is_bounded() -> None:
    current = SenderThreads()
    for i in range(30):
        rid = request_id_for(Channel.sms, f"SM{i}")
        current = record(current, Claim(key=f"k{i}", request_id=rid, kind="new"), channel=Channel.sms, at=NOW,
                         lines=None, message_id=None)
    assert len(current.threads) == 20 and current.threads[0].request_id == request_id_for(Channel.sms, "SM29")
    assert len(current.claims) == 20


def test_closing_and_reopening_follow_the_events() -> None:
    closed = touched(of(thread()), REQ, state="closed")
    assert closed is not None and closed.threads[0].state == "closed"
    assert touched(closed, REQ, state="closed") is None  # a redelivery changes nothing
    assert touched(closed, "req_other", state="open") is None


def test_an_agents_reply_is_activity_in_the_window() -> None:
    old = of(thread(ago=80))
    assert decide(msg(), old, POLICY, NOW) == New()
    replied = touched(old, REQ, at=NOW - timedelta(hours=1))
    assert replied is not None and decide(msg(), replied, POLICY, NOW) == Append(REQ, "contact")


def test_mail_thread_names_the_request_and_threads_on_the_customers_mail() -> None:
    t = mail_thread(message_id=f"reply.3.{MAIL_REQ}", request_id=MAIL_REQ, domain="example.com", subject="发票",
                    customer_message_ids=["first@example.cn", "second@example.cn"], default_subject="x")
    assert request_named(t.message_id) == MAIL_REQ
    assert t.in_reply_to == "<second@example.cn>" and t.references == ["<first@example.cn>", "<second@example.cn>"]
    assert t.subject == f"Re: 发票 [{short_ref(MAIL_REQ)}]"


def test_windows_config_is_checked() -> None:
    assert parse_windows("wechat=0,sms=12h") == {Channel.sms: timedelta(hours=12)}
    for bad in ("email=1h", "fax=1h", "sms"):
        try:
            parse_windows(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


# -- properties --------------------------------------------------------------------------------------
request_ids = st.sampled_from([request_id_for(Channel.email, f"m{i}@x") for i in range(6)])
threads_st = st.lists(st.builds(
    lambda rid, ch, state, ago, lines: thread(rid, ch, state=state, ago=ago, lines=lines),
    request_ids, st.sampled_from(list(Channel)), st.sampled_from(["open", "closed"]),
    st.floats(min_value=0, max_value=200), st.integers(0, 5)), max_size=6, unique_by=lambda t: t.request_id)
incoming_st = st.builds(
    lambda ch, refs, text, lines: Incoming(channel=ch, key="k", source_id="s", text=text, references=tuple(refs),
                                           lines=lines if ch is Channel.web else None, at=NOW),
    st.sampled_from(list(Channel)),
    st.lists(st.one_of(st.sampled_from([f"m{i}@x" for i in range(8)]),
                       request_ids.map(lambda r: kefu_message_id(f"receipt.{r}", "k.cn").strip("<>")),
                       st.text(max_size=20)), max_size=4),
    st.one_of(st.text(max_size=60), request_ids.map(lambda r: f"about [{short_ref(r)}]")),
    st.integers(0, 8))


@given(threads_st, threads_st, incoming_st)
def test_a_message_is_never_attached_to_another_senders_request(mine: list[ThreadRef], others: list[ThreadRef],
                                                                message: Incoming) -> None:
    """Whatever Message-ID or ref a message names, it continues only a request kept under its own
    sender: another sender's requests are never among the candidates, so never the answer."""
    theirs = {t.request_id for t in others} - {t.request_id for t in mine}
    got = decide(message, SenderThreads(threads=mine), POLICY, NOW)
    if isinstance(got, Append):
        assert got.request_id in {t.request_id for t in mine}
        assert got.request_id not in theirs
    if isinstance(got, New) and got.follow_up_of is not None:
        assert got.follow_up_of in {t.request_id for t in mine}


@given(threads_st, incoming_st)
def test_nothing_appends_to_a_closed_request(mine: list[ThreadRef], message: Incoming) -> None:
    got = decide(message, SenderThreads(threads=mine), POLICY, NOW)
    if isinstance(got, Append):
        assert next(t for t in mine if t.request_id == got.request_id).state == "open"
