"""Adapter authentication by signature, and per-adapter rate limits. Pure: `now` is passed in.

Signature (as Stripe signs webhooks): header `Kefu-Signature: t=<unix seconds>,v1=<hex>` where
v1 = HMAC-SHA256(adapter secret, "<t>.<raw body>"). Valid within `tolerance` seconds of now; the
caller refuses a signature seen before (replay).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(header: str, body: bytes, secrets: dict[str, str], *, now: float,
           tolerance: int = TOLERANCE_SECONDS) -> str:
    """The name of the adapter whose secret signed `body`; BadSignature otherwise."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise BadSignature("malformed signature header") from None
    if abs(now - timestamp) > tolerance:
        raise BadSignature("signature timestamp outside the 5-minute window")
    for name, secret in secrets.items():
        expected = sign(secret, timestamp, body).split("v1=", 1)[1]
        if any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
            return name
    raise BadSignature("signature does not match")


def replay_key(header: str) -> str:
    return hashlib.sha256(header.encode()).hexdigest()[:40]


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
