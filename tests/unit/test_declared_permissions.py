"""Each service's declared publications (its `PUBLISHES`, which its Publisher enforces) are allowed
to its NATS user in deploy/nats/accounts.conf as shipped: a subject a service publishes and its user
may not is a deployment that fails at the first such event (routing's dispatched/noted/pending/
resumed events were missing until this test). The server-side half, with real connections, is
tests/integration/test_nats_least_privilege.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def allowed_publish(user: str) -> list[str]:
    text = (ROOT / "deploy/nats/accounts.conf").read_text()
    start = text.index(f"user: {user},")
    block = text[start:text.index("subscribe:", start)]
    block = re.sub(r"#[^\n]*", "", block)
    return re.findall(r'"([^"]+)"', block)


def matches(pattern: str, subject: str) -> bool:
    p, t = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(t) > i
        if i >= len(t) or (token != "*" and token != t[i]):
            return False
    return len(p) == len(t)


def declared(service: str) -> list[str]:
    module = __import__(f"services.{service}.handlers", fromlist=["PUBLISHES"])
    return [p.subject for p in module.PUBLISHES]


@pytest.mark.parametrize("service", ["intake", "routing", "feedback", "metrics", "console", "gateway"])
def test_every_subject_a_service_declares_is_allowed_to_its_user(service: str) -> None:
    allowed = allowed_publish(service)
    missing = [subject for subject in declared(service) if not any(matches(a, subject) for a in allowed)]
    assert missing == [], f"{service} publishes {missing}, which deploy/nats/accounts.conf does not allow it"


def test_the_matcher_knows_wildcards() -> None:
    assert matches("kefu.outbound.>", "kefu.outbound.sms")
    assert not matches("kefu.outbound.>", "kefu.outbound")
    assert matches("kefu.*.x", "kefu.a.x") and not matches("kefu.*.x", "kefu.a.y")
    assert not matches("kefu.events.request.received", "kefu.events.request.rejected")


def test_the_console_may_publish_only_reads() -> None:
    """The console changes nothing on NATS: its user's publish rights are JetStream reads only."""
    allowed = allowed_publish("console")
    assert allowed and all(a.startswith(("$JS.API.INFO", "$JS.API.STREAM.INFO.", "$JS.API.DIRECT.GET.",
                                         "$JS.API.STREAM.MSG.GET.")) for a in allowed), allowed
