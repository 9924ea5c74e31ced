from __future__ import annotations

import pytest

from services.intake.domain.webhooks import BadSignature, TokenBucket, may_submit, sign, verify

SECRETS = {"wechat": "s3cret", "sms": "other"}
BODY = b'{"event_id": "e1", "text": "hi"}'


def test_a_fresh_signature_names_its_adapter() -> None:
    assert verify(sign("s3cret", 1_000, BODY), BODY, SECRETS, now=1_100).adapter == "wechat"
    assert verify(sign("other", 1_000, BODY), BODY, SECRETS, now=1_000).adapter == "sms"


def test_a_signature_has_one_spelling_and_one_replay_identity() -> None:
    """The probe's bypass: variants of a refused signature were accepted again as new ones."""
    header = sign("s3cret", 1_000, BODY)
    t, v1 = header.split(",")
    for variant in (f"{header},x=1", f"{v1},{t}", f"t=0{t[2:]},{v1}", f"{t}, {v1}", f" {header}",
                    f"{header},{v1}", f"{t},{v1.upper().replace('V1=', 'v1=')}", f"{t},v1={v1[3:]}0",
                    f"{header}\n"):
        with pytest.raises(BadSignature, match="malformed"):
            verify(variant, BODY, SECRETS, now=1_000)
    first, again = verify(header, BODY, SECRETS, now=1_000), verify(header, BODY, SECRETS, now=1_200)
    assert first.replay_key == again.replay_key  # the same signature whenever it comes
    assert first.replay_key != verify(sign("other", 1_000, BODY), BODY, SECRETS, now=1_000).replay_key


@pytest.mark.parametrize(
    ("header", "body", "now", "why"),
    [
        (sign("s3cret", 1_000, BODY), BODY + b" ", 1_000, "does not match"),
        (sign("wrong", 1_000, BODY), BODY, 1_000, "does not match"),
        (sign("s3cret", 1_000, BODY), BODY, 1_301, "window"),
        (sign("s3cret", 1_000, BODY), BODY, 699, "window"),
        ("v1=abc", BODY, 1_000, "malformed"),
        ("t=soon,v1=abc", BODY, 1_000, "malformed"),
    ],
)
def test_bad_or_stale_signatures_are_refused(header: str, body: bytes, now: int, why: str) -> None:
    with pytest.raises(BadSignature, match=why):
        verify(header, body, SECRETS, now=now)


def test_token_bucket_allows_bursts_then_paces() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take(10.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(10.0) == pytest.approx(0.5)
    assert bucket.take(10.5) == 0


def test_an_adapter_named_after_its_channels_submits_those_only() -> None:
    assert may_submit("sms", "sms") and not may_submit("sms", "wechat")
    assert may_submit("gw@sms+wechat", "wechat") and not may_submit("gw@sms+wechat", "email")
    assert may_submit("crm-bridge", "email")  # a name that is no channel: a bridge for every channel
