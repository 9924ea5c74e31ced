from __future__ import annotations

import pytest

from services.intake.domain.webhooks import BadSignature, TokenBucket, sign, verify

SECRETS = {"wechat": "s3cret", "sms": "other"}
BODY = b'{"event_id": "e1", "text": "hi"}'


def test_a_fresh_signature_names_its_adapter() -> None:
    assert verify(sign("s3cret", 1_000, BODY), BODY, SECRETS, now=1_100) == "wechat"
    assert verify(sign("other", 1_000, BODY), BODY, SECRETS, now=1_000) == "sms"


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
