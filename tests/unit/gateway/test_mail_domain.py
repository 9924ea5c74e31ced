"""The gateway's mail decisions (services/gateway/domain/mail.py): where a mailbox is read on from,
which UIDs are new, a FETCH answer read, and kefu's mail in its thread."""

from __future__ import annotations

import email
from email import policy

from services.gateway.domain.mail import MailboxState, fetched, new_uids, outgoing, resume
from shared.contract.enums import Channel, Language
from shared.contract.models import MailThread, OutboundMessage


def test_a_mailbox_is_read_on_from_its_place_and_over_when_its_uidvalidity_changes() -> None:
    assert resume(None, 7) == MailboxState(uidvalidity=7, last_uid=0)
    kept = MailboxState(uidvalidity=7, last_uid=42)
    assert resume(kept, 7) == kept and resume(kept, 8) == MailboxState(uidvalidity=8, last_uid=0)


def test_only_uids_above_the_place_and_oldest_first() -> None:
    state = MailboxState(uidvalidity=1, last_uid=5)
    assert new_uids([b"5"], state, limit=10) == []  # `6:*` answers the highest UID even when it is 5
    assert new_uids([b"9 6 7", b"12"], state, limit=2) == [6, 7]


def test_a_fetch_answer_gives_each_uids_raw_message() -> None:
    lines: list[bytes | bytearray] = [b"1 FETCH (UID 17 BODY[] {5}", bytearray(b"mail1"), b")",
                                      b"2 FETCH (UID 18 BODY[] {5}", bytearray(b"mail2"), b")", b"Fetch completed"]
    assert fetched(lines) == {17: b"mail1", 18: b"mail2"}


def test_kefus_mail_is_in_the_thread_and_automatic_mail_says_so() -> None:
    msg = OutboundMessage(message_id="receipt.req_x", request_id="req_x", channel=Channel.email, kind="receipt",
                          to={"email": "li@example.cn"}, language=Language.zh, text="已收到", automatic=True,
                          thread=MailThread(message_id="<kefu.receipt.req_x@kefu.example.cn>", in_reply_to="a@b",
                                            references=["a@b"], subject="Re: 订单 [ABCDEFGH]"))
    mail = email.message_from_bytes(outgoing(msg, sender="support@kefu.example.cn", sender_name="客服").as_bytes(),
                                    policy=policy.default)
    assert mail["Message-ID"] == "<kefu.receipt.req_x@kefu.example.cn>" and mail["In-Reply-To"] == "<a@b>"
    assert mail["References"] == "<a@b>" and mail["Subject"] == "Re: 订单 [ABCDEFGH]"
    assert mail["Auto-Submitted"] == "auto-replied" and mail.get_content().strip() == "已收到"
    reply = outgoing(msg.model_copy(update={"automatic": False, "kind": "reply"}), sender="support@kefu.example.cn")
    assert reply["Auto-Submitted"] is None
