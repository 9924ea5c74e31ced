"""Twilio's webhook signature (services/gateway/domain/twilio.py) against the `twilio` package's
own RequestValidator."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from services.gateway.domain.twilio import twilio_signature, valid

TOKEN = "12345"
URL = "https://kefu.example.cn/gateway/sms?tenant=a"
PARAMS = {"MessageSid": "SM9f8e", "From": "+8613800138000", "To": "+861069000000", "Body": "我的快递丢了 & 要赔偿",
          "NumMedia": "0", "AccountSid": "AC123"}


def test_a_signature_twilio_computes_is_valid_here_and_the_other_way() -> None:
    theirs = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    assert valid(TOKEN, URL, PARAMS.items(), theirs)
    assert twilio_signature(TOKEN, URL, PARAMS.items()) == theirs
    assert RequestValidator(TOKEN).validate(URL, PARAMS, twilio_signature(TOKEN, URL, PARAMS.items()))


def test_the_default_port_either_way_as_twilio_accepts_it() -> None:
    with_port = "https://kefu.example.cn:443/gateway/sms?tenant=a"
    theirs = RequestValidator(TOKEN).compute_signature(with_port, PARAMS)
    assert valid(TOKEN, URL, PARAMS.items(), theirs) and RequestValidator(TOKEN).validate(URL, PARAMS, theirs)


def test_anything_changed_is_refused() -> None:
    theirs = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    assert not valid(TOKEN, URL, (PARAMS | {"Body": "改了"}).items(), theirs)
    assert not valid("another", URL, PARAMS.items(), theirs)
    assert not valid(TOKEN, URL.replace("tenant=a", "tenant=b"), PARAMS.items(), theirs)
    assert not valid(TOKEN, URL, PARAMS.items(), None) and not valid(TOKEN, URL, PARAMS.items(), "")
