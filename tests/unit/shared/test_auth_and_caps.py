"""Staff tokens, the object-level rules and the outbound cap decision, on their own."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.caps import DailyCount, admit, cap_key
from shared.http import auth

KEY = auth.signing_key(None, "admin-token")
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
AGENT = auth.Principal(subject="a1", role="agent", departments=frozenset({"business"}))
SUPERVISOR = auth.Principal(subject="s1", role="supervisor", departments=frozenset({"quality", "business"}))


def test_a_token_names_its_principal_until_it_expires() -> None:
    now = datetime.now(UTC)
    token, expires = auth.issue(KEY, SUPERVISOR, now=now, ttl=timedelta(hours=12))
    assert auth.verify(KEY, token) == SUPERVISOR.model_copy(update={"issued_at": round(now.timestamp(), 3)})
    old, _ = auth.issue(KEY, AGENT, now=NOW - timedelta(days=30), ttl=timedelta(hours=12))
    with pytest.raises(auth.TokenRefused, match="expired"):
        auth.verify(KEY, old)
    assert expires - datetime.now(UTC) <= timedelta(hours=12)


def test_a_token_issued_before_its_subjects_revocation_is_void_to_the_millisecond() -> None:
    now = datetime.now(UTC)
    token, _ = auth.issue(KEY, AGENT, now=now, ttl=timedelta(hours=12))
    principal, at = auth.verify(KEY, token), round(now.timestamp(), 3)
    assert not auth.revoked(principal, not_before=None)
    assert auth.revoked(principal, not_before=at + 0.001)
    assert not auth.revoked(principal, not_before=at)  # a token issued the same moment, after


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_malformed_and_unsigned_tokens_are_refused(token: str) -> None:
    with pytest.raises(auth.TokenRefused):
        auth.verify(KEY, token)


def test_a_token_signed_with_another_key_or_a_bad_role_is_refused() -> None:
    import jwt

    other, _ = auth.issue(auth.signing_key("x" * 32, "admin-token"), AGENT, now=datetime.now(UTC), ttl=timedelta(hours=1))
    with pytest.raises(auth.TokenRefused):
        auth.verify(KEY, other)
    claims = {"iss": auth.ISSUER, "aud": auth.AUDIENCE, "sub": "a1", "role": "root", "iat": 1, "exp": 4102444800}
    with pytest.raises(auth.TokenRefused):
        auth.verify(KEY, jwt.encode(claims, KEY, algorithm="HS256"))


def test_the_key_is_the_token_secret_when_set_and_derived_from_the_admin_token_otherwise() -> None:
    assert auth.signing_key("s" * 40, "admin") == b"s" * 40
    assert auth.signing_key(None, "admin") != auth.signing_key(None, "other") and len(KEY) == 32


def test_who_may_read_and_act_on_a_request() -> None:
    own = {"department": "business", "co_departments": ["quality"], "agent_id": None}
    assert auth.may_read_request(AGENT, **own) and auth.may_act_on_request(AGENT, department="business")
    other = auth.Principal(subject="q1", role="agent", departments=frozenset({"quality"}))
    # co-handling department reads, but only the lead department (or the holder) acts
    assert auth.may_read_request(other, **own) and not auth.may_act_on_request(other, department="business")
    assert auth.may_act_on_request(other, department="business", agent_id="q1")  # offered to them (VIP)
    stranger = auth.Principal(subject="h1", role="agent", departments=frozenset({"hr"}))
    assert not auth.may_read_request(stranger, **own)
    assert not auth.may_read_request(SUPERVISOR.model_copy(update={"departments": frozenset({"hr"})}), **own)
    # a supervisor whose name equals the holder's gains nothing by it
    holder_named = auth.Principal(subject="a9", role="supervisor", departments=frozenset({"hr"}))
    assert not auth.may_act_on_request(holder_named, department="business", agent_id="a9")
    assert auth.may_act_on_request(auth.ADMIN, department=None)


def test_queues_and_agents() -> None:
    assert auth.may_see_queue(AGENT, queue="business.normal", department="business")
    assert not auth.may_see_queue(AGENT, queue="quality.normal", department="quality")
    assert auth.may_see_queue(AGENT, queue="vip", department=None, agent_queues=["vip"])
    assert not auth.may_see_queue(SUPERVISOR, queue="vip", department=None, agent_queues=["vip"])
    assert auth.may_see_agent(AGENT, agent_id="a1", department="business")
    assert not auth.may_see_agent(AGENT, agent_id="a2", department="business")
    assert auth.may_see_agent(SUPERVISOR, agent_id="a2", department="business")


def test_the_daily_cap_counts_each_message_once() -> None:
    ok, first = admit(None, "m1", 2)
    assert ok and first == DailyCount(message_ids=["m1"])
    assert admit(first, "m1", 2) == (True, None)  # the same message again (a retry): sent, not counted
    ok, second = admit(first, "m2", 2)
    assert ok and second is not None
    assert admit(second, "m3", 2) == (False, None)
    assert admit(second, "m2", 2) == (True, None)


def test_the_loop_guard_counts_automatic_messages_per_hour_in_the_same_entry() -> None:
    ok, one = admit(None, "receipt.r1", 20, hour="10", hourly=2)
    assert ok and one is not None and one.automatic == {"10": ["receipt.r1"]}
    ok, two = admit(one, "receipt.r2", 20, hour="10", hourly=2)
    assert ok and two is not None
    assert admit(two, "receipt.r3", 20, hour="10", hourly=2) == (False, None)  # a third in the hour: held
    assert admit(two, "receipt.r2", 20, hour="10", hourly=2) == (True, None)  # a retry of a counted one
    ok, person = admit(two, "reply.4.r3", 20)  # a person's reply: not automatic, not held
    assert ok and person is not None and person.automatic == two.automatic
    ok, later = admit(person, "receipt.r3", 20, hour="11", hourly=2)  # the next hour starts afresh
    assert ok and later is not None and later.automatic == {"11": ["receipt.r3"]}
    assert later.message_ids == ["receipt.r1", "receipt.r2", "reply.4.r3", "receipt.r3"]


def test_the_cap_key_is_a_hashed_contact_per_day() -> None:
    key = cap_key({"phone": "+8613900001111"}, date(2026, 11, 24))
    assert key is not None and key.endswith(".20261124") and "13900001111" not in key
    assert key == cap_key({"email": "x@example.com", "phone": "+8613900001111"}, date(2026, 11, 24))
    assert cap_key({}, date(2026, 11, 24)) is None
    assert cap_key({"department": "hr"}, date(2026, 11, 24)) is not None


def test_a_token_secret_shorter_than_an_hs256_key_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from shared.settings import KefuSettings

    with pytest.raises(ValidationError, match="at least 32 bytes"):
        KefuSettings(token_secret="short")
    assert KefuSettings(token_secret="s" * 32).token_secret is not None


def test_who_takes_a_request_on_accept() -> None:
    assert auth.accepting_agent(AGENT, None) == auth.accepting_agent(AGENT, "a1") == "a1"
    with pytest.raises(auth.Refused) as other:
        auth.accepting_agent(AGENT, "a2")
    assert other.value.status == 403
    assert auth.accepting_agent(SUPERVISOR, "a2") == "a2"
    with pytest.raises(auth.Refused) as unnamed:
        auth.accepting_agent(auth.ADMIN, None)
    assert unnamed.value.status == 422
    assert auth.may_assign_to(SUPERVISOR, agent_department="quality")
    assert not auth.may_assign_to(SUPERVISOR, agent_department="hr") and auth.may_assign_to(auth.ADMIN, agent_department="hr")


def test_what_a_new_token_names() -> None:
    known = ["business", "quality", "hr"]
    agent = auth.staff_principal(subject="a1", role="agent", requested=[], agent_department="business", known=known)
    assert agent.departments == frozenset({"business"})
    supervisor = auth.staff_principal(subject="s1", role="supervisor", requested=["hr", "hr"], agent_department=None,
                                      known=known)
    assert supervisor.departments == frozenset({"hr"})
    for role, requested in (("agent", ["hr"]), ("supervisor", []), ("supervisor", ["nowhere"]), ("admin", ["hr"])):
        with pytest.raises(auth.Refused):
            auth.staff_principal(subject="x", role=role, requested=requested, agent_department="hr", known=known)
    assert auth.may_see_department(SUPERVISOR, "quality") and not auth.may_see_department(SUPERVISOR, None)
    assert auth.may_see_department(auth.ADMIN, None)
