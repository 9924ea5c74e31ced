"""Adapter authentication by signature, and per-adapter rate limits. Pure: `now` is passed in.

Signature (as Stripe signs webhooks): header `Kefu-Signature: t=<unix seconds>,v1=<hex>` where
v1 = HMAC-SHA256(adapter secret, "<t>.<raw body>"). Valid within `tolerance` seconds of now; the
caller refuses a signature seen before (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from shared.contract.enums import CHANNEL_NAMES

TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


SIGNATURE = re.compile(r"t=([1-9][0-9]{0,11}),v1=([0-9a-f]{64})")


@dataclass(frozen=True)
class Signed:
    """Who signed, and the signature's identity for replay protection: (adapter, t, v1). The header's
    text is not the identity: only one spelling of a signature is accepted at all."""

    adapter: str
    timestamp: int
    mac: str

    @property
    def replay_key(self) -> str:
        return hashlib.sha256(f"{self.adapter}\n{self.timestamp}\n{self.mac}".encode()).hexdigest()[:40]


def verify(header: str, body: bytes, secrets: dict[str, str], *, now: float,
           tolerance: int = TOLERANCE_SECONDS) -> Signed:
    """Who signed `body`; BadSignature otherwise. The header must be exactly `t=<unix seconds>,
    v1=<64 lower-case hex>` (as `sign` writes it): no other keys, order, spaces, leading zeros or
    second v1, so that a signature has one spelling and a replay cannot pass as a new one."""
    found = SIGNATURE.fullmatch(header)
    if found is None:
        raise BadSignature("malformed signature header: expected t=<unix seconds>,v1=<hex sha256>")
    timestamp, mac = int(found.group(1)), found.group(2)
    if abs(now - timestamp) > tolerance:
        raise BadSignature("signature timestamp outside the 5-minute window")
    for name, secret in secrets.items():
        expected = sign(secret, timestamp, body).split("v1=", 1)[1]
        if hmac.compare_digest(expected, mac):
            return Signed(name, timestamp, mac)
    raise BadSignature("signature does not match")


def may_submit(adapter: str, channel: str) -> bool:
    """An adapter named after a channel (`sms:key`) or naming its channels after `@`
    (`gateway@sms+wechat:key`) submits those channels only; any other name is a bridge for every
    channel (docs/security.md: name your keys after their channels)."""
    name, _, listed = adapter.partition("@")
    channels = set(listed.split("+")) if listed else ({name} if name in CHANNEL_NAMES else None)
    return channels is None or channel in channels


@dataclass
class TokenBucket:
    """`rate` requests a second on average, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def take(self, now: float) -> float:
        """0 when allowed; else the seconds to wait before a request would be."""
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
