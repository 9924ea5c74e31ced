"""No input crashes a parser: it normalises, or raises a typed Rejection (or NotARequest)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.domain.errors import NotARequest, Rejection
from services.intake.domain.model import ParsedRequest
from services.intake.domain.parsers import PARSERS, ParseContext
from shared.contract.enums import Channel

CTX = ParseContext(now=datetime(2026, 11, 24, tzinfo=UTC), tz=ZoneInfo("Asia/Shanghai"))
FIELDS = {
    Channel.phone: ["call_id", "caller", "called", "started_at", "ivr_path", "transcript", "agent_notes",
                    "customer_name", "category", "urgency"],
    Channel.web: ["form_id", "session_id", "name", "email", "phone", "subject", "message", "category",
                  "page_url", "visitor", "messages"],
    Channel.app: ["event_id", "user_id", "name", "phone", "email", "app_version", "device", "category",
                  "text", "attachments", "created_at"],
    Channel.walkin: ["ticket_no", "branch", "staff_id", "customer", "summary", "category", "urgency"],
}
fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def outcome(channel: Channel, raw: bytes) -> str:
    try:
        parsed = PARSERS[channel](raw, CTX)
    except Rejection as r:
        assert r.detail and r.status in (400, 404, 413, 415, 422)
        return "rejected"
    except NotARequest:
        return "ignored"
    assert isinstance(parsed, ParsedRequest)
    assert parsed.source_id and (parsed.body or parsed.attachments)
    assert parsed.received_at is None or parsed.received_at.tzinfo is not None
    return "parsed"


@fuzz
@given(channel=st.sampled_from(list(Channel)), raw=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_any_parser(channel: Channel, raw: bytes) -> None:
    outcome(channel, raw)


@fuzz
@given(data=st.data(), channel=st.sampled_from(list(FIELDS)))
def test_json_payloads_with_known_fields_of_any_type(data: st.DataObject, channel: Channel) -> None:
    keys = data.draw(st.lists(st.sampled_from(FIELDS[channel]), unique=True))
    obj = {k: data.draw(json_values) for k in keys}
    outcome(channel, json.dumps(obj).encode())


@fuzz
@given(
    fields=st.dictionaries(
        st.sampled_from(["MessageSid", "From", "To", "Body", "SmsSid", "X"]), st.text(max_size=80), max_size=6
    )
)
def test_sms_forms_of_any_content(fields: dict[str, str]) -> None:
    outcome(Channel.sms, urlencode(fields).encode())


xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)


@fuzz
@given(
    msg_type=st.sampled_from(["text", "voice", "image", "event", "location", "link", "video", "bogus", ""]),
    values=st.dictionaries(
        st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "Content", "Recognition", "MsgId",
                         "PicUrl", "MediaId", "Event", "Label", "Title"]),
        xml_text,
        max_size=8,
    ),
)
def test_wechat_xml_of_any_content(msg_type: str, values: dict[str, str]) -> None:
    from xml.sax.saxutils import escape

    body = "".join(f"<{k}><![CDATA[{v.replace(']]>', '')}]]></{k}>" for k, v in values.items())
    outcome(Channel.wechat, f"<xml><MsgType>{escape(msg_type)}</MsgType>{body}</xml>".encode())


@fuzz
@given(
    headers=st.dictionaries(
        st.sampled_from(["From", "Subject", "Date", "Message-ID", "Content-Type", "Content-Transfer-Encoding",
                         "Reply-To"]),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
        max_size=7,
    ),
    body=st.binary(max_size=500),
)
def test_email_with_any_headers_and_body(headers: dict[str, str], body: bytes) -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("utf-8", "surrogateescape")
    outcome(Channel.email, head + b"\r\n" + body)
