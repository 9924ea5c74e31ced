"""Which contacts a message proves, per channel (docs/security.md#identity)."""

from __future__ import annotations

import pytest

from services.intake.domain.identity import proof, sender_authenticated
from services.intake.domain.model import Contact
from shared.contract.enums import Channel

EVERYTHING = Contact(phone="+8613900001111", email="a@example.cn", wechat_openid="oX", app_user_id="u-1")


@pytest.mark.parametrize(("channel", "proven"), [
    (Channel.phone, {"phone"}), (Channel.sms, {"phone"}), (Channel.wechat, {"wechat_openid"}),
    (Channel.app, {"app_user_id"}), (Channel.walkin, {"phone"}), (Channel.email, set()), (Channel.web, set()),
])
def test_each_channel_proves_what_its_platform_vouches_for(channel: Channel, proven: set[str]) -> None:
    assert proof(channel, EVERYTHING).proven == proven


def test_a_mail_sender_is_written_to_but_proves_nothing_without_a_trusted_dmarc_pass() -> None:
    mail = Contact(email="a@example.cn")
    assert (proof(Channel.email, mail).proven, proof(Channel.email, mail).reachable) == (set(), {"email"})
    assert proof(Channel.email, mail, attested=["email"]).proven == {"email"}


def test_a_portal_or_app_vouches_only_for_contacts_it_can_check_and_that_are_there() -> None:
    typed = Contact(phone="+8613900001111", email="a@example.cn")
    assert proof(Channel.web, typed).reachable == set()  # typed into a form: nowhere to write
    assert proof(Channel.web, typed, attested=["email"]).reachable == {"email"}
    assert proof(Channel.web, Contact(phone="+8613900001111"), attested=["email", "wechat_openid"]).proven == set()
    assert proof(Channel.sms, typed, attested=["email"]).proven == {"phone"}  # only portals and apps attest


TRUSTED = ["mx.kefu.example"]


@pytest.mark.parametrize(("headers", "expected"), [
    (["mx.kefu.example; spf=pass smtp.mailfrom=example.cn; dmarc=pass header.from=example.cn"], True),
    (["MX.Kefu.Example 1; dmarc=pass (p=reject) header.from=Example.CN"], True),
    (["mx.kefu.example; dmarc=fail header.from=example.cn"], False),
    (["mx.kefu.example; dmarc=pass header.from=other.cn"], False),  # aligned with another domain
    (["evil.example; dmarc=pass header.from=example.cn"], False),  # written by the sender, not our server
    (["mx.kefu.example; dkim=pass header.d=example.cn"], False),  # no DMARC verdict
    (["this is not a header ;;; ="], False),
    ([], False),
])
def test_only_a_trusted_servers_dmarc_pass_for_the_from_domain_proves_a_sender(headers, expected) -> None:
    assert sender_authenticated(headers, trusted=TRUSTED, from_domain="example.cn") is expected


def test_without_trusted_servers_nothing_is_authenticated() -> None:
    assert not sender_authenticated(["mx.kefu.example; dmarc=pass header.from=example.cn"], trusted=[],
                                    from_domain="example.cn")


def test_only_a_proven_contact_recognises_and_a_claimed_one_makes_a_possible_customer() -> None:
    from services.intake.domain.canonical import CustomerRecord
    from services.intake.domain.identity import recognise

    vip = CustomerRecord(customer_id="c-vip", phones=["+8613900002222"])
    other = CustomerRecord(customer_id="c-2", emails=["a@example.cn"])
    assert recognise([("phone", vip)], frozenset({"phone"})) == (vip, None)
    assert recognise([("phone", vip)], frozenset()) == (None, "c-vip")  # typed into a web form
    assert recognise([("phone", vip), ("email", other)], frozenset({"email"})) == (other, "c-vip")
    assert recognise([("phone", vip), ("email", vip)], frozenset({"email"})) == (vip, None)  # the same person
    assert recognise([], frozenset({"phone"})) == (None, None)
