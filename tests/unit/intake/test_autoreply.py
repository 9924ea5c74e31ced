"""Machine-written mail is recognised (RFC 3834 and what real servers send), a person's is not,
and a bounce gives back the Message-ID it returns."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.intake.domain.errors import UnparseablePayload
from services.intake.domain.parsers.common import ParseContext
from services.intake.domain.parsers.email import parse_email

DATA = Path(__file__).resolve().parents[2] / "data" / "email"
CTX = ParseContext(now=datetime(2026, 12, 5, tzinfo=UTC), tz=ZoneInfo("Asia/Shanghai"), region="CN")


def mail(subject: str = "发票什么时候开", sender: str = "王芳 <wangfang@example.cn>", body: str = "请问发票的事",
         **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "service@example.cn"
    msg["Subject"] = subject
    msg["Message-ID"] = "<m1@example.cn>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return bytes(msg)


NOT_A_MESSAGE = {"flanker-bounce-delayed-broken.eml"}  # a report's inner part alone: no From, Subject, Date or id


@pytest.mark.parametrize("path", sorted((DATA / "auto").glob("*.eml")), ids=lambda p: p.name)
def test_real_reports_are_auto_generated(path: Path) -> None:
    if path.name in NOT_A_MESSAGE:
        with pytest.raises(UnparseablePayload):  # rejected, kept raw: never answered either
            parse_email(path.read_bytes(), CTX)
        return
    assert parse_email(path.read_bytes(), CTX).thread.auto


@pytest.mark.parametrize("path", sorted(DATA.glob("*.eml")), ids=lambda p: p.name)
def test_real_person_mail_is_not(path: Path) -> None:
    assert parse_email(path.read_bytes(), CTX).thread.auto is None


def test_a_bounce_returns_the_message_id_it_bounces() -> None:
    parsed = parse_email((DATA / "auto" / "flanker-bounce-mailbox-full.eml").read_bytes(), CTX)
    assert "4E326A95.3010907@example.com" in parsed.thread.bounced


@pytest.mark.parametrize(("headers", "sign"), [
    ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted"),
    ({"Auto_Submitted": "auto-generated; owner-email=x@y"}, "Auto-Submitted"),
    ({"Precedence": "bulk"}, "Precedence"),
    ({"Precedence": "junk"}, "Precedence"),
    ({"Precedence": "list"}, "Precedence"),
    ({"List_Id": "<news.example.cn>"}, "List-Id"),
    ({"X_Loop": "service@example.cn"}, "X-Loop"),
    ({"X_Auto_Response_Suppress": "All"}, "X-Auto-Response-Suppress"),
    ({"X_Auto_Response_Suppress": "DR, OOF"}, "X-Auto-Response-Suppress"),
    ({"X_Autoreply": "yes"}, "X-Autoreply"),
    ({"X_Autorespond": "yes"}, "X-Autorespond"),
])
def test_headers_that_mean_a_machine(headers: dict[str, str], sign: str) -> None:
    auto = parse_email(mail(**headers), CTX).thread.auto
    assert auto is not None and sign in auto


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.cn", "postmaster@example.cn"])
def test_robot_senders(sender: str) -> None:
    assert parse_email(mail(sender=sender), CTX).thread.auto


@pytest.mark.parametrize("subject", ["自动回复: 发票什么时候开", "Automatic reply: invoice", "Out of Office: invoice",
                                     "休假中", "Auto: 发票", "Undeliverable: invoice", "自動回覆：發票"])
def test_vacation_and_failure_subjects(subject: str) -> None:
    assert parse_email(mail(subject=subject), CTX).thread.auto


@pytest.mark.parametrize(("headers", "subject"), [
    ({"Auto_Submitted": "no"}, "发票什么时候开"),
    ({}, "Re: 自动回复的问题还没解决"),  # a person writing about auto-replies, not one
    ({}, "回复: 您的服务请求 [ABCD2345]"),
    ({"X_Auto_Response_Suppress": "RN"}, "Invoice"),  # only read-notification suppression: a person's mail
])
def test_a_persons_mail_is_not_auto(headers: dict[str, str], subject: str) -> None:
    assert parse_email(mail(subject=subject, **headers), CTX).thread.auto is None


def test_an_empty_report_is_ignored_not_rejected() -> None:
    raw = (b"From: MAILER-DAEMON@mx.example.cn\r\nMessage-ID: <b1@mx>\r\nSubject: \r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x--\r\n")
    assert parse_email(raw, CTX).thread.auto


def test_references_are_read_in_reply_to_first_then_newest_first() -> None:
    parsed = parse_email(mail(In_Reply_To="<c@x>", References="<a@x> <b@x> <c@x>"), CTX)
    assert parsed.thread.references == ["c@x", "b@x", "a@x"]
    assert email.message_from_bytes(mail(), policy=email.policy.default)["Message-ID"] == "<m1@example.cn>"
