"""The WeChat server protocol (services/gateway/domain/wechat.py) against wechatpy's own
implementation: envelopes and signatures built by wechatpy are read by kefu, and what kefu
refuses wechatpy would refuse too."""

from __future__ import annotations

import base64
import time

import pytest
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature as wechatpy_check_signature

from services.gateway.domain.wechat import Crypto, Refused, check_fresh, check_signature, dedup_key, field, signature, xml_root

TOKEN = "kefu-test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat's console gives
APP_ID = "wx1234567890abcdef"
TEXT = ("<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[oUser123]]></FromUserName>"
        "<CreateTime>1733380000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[我的订单还没到，怎么办？]]></Content><MsgId>24611234567890123</MsgId></xml>")


def test_the_url_check_signature_is_wechatpys() -> None:
    timestamp, nonce = "1733380000", "573289571"
    sig = signature(TOKEN, timestamp, nonce)
    wechatpy_check_signature(TOKEN, sig, timestamp, nonce)  # raises if wechatpy disagrees
    check_signature(sig, TOKEN, timestamp, nonce)
    with pytest.raises(Refused) as refused:
        check_signature(sig, "another-token", timestamp, nonce)
    assert refused.value.status == 403


def test_a_safe_mode_envelope_built_by_wechatpy_decrypts_and_its_msg_signature_checks() -> None:
    nonce, timestamp = "1234567", "1733380000"
    envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(TEXT, nonce, timestamp)
    root = xml_root(envelope.encode())
    encrypted, msg_signature = field(root, "Encrypt"), field(root, "MsgSignature")
    assert encrypted and msg_signature
    check_signature(msg_signature, TOKEN, timestamp, nonce, encrypted)
    plain = Crypto(encoding_aes_key=AES_KEY, app_id=APP_ID).decrypt(encrypted)
    assert plain.decode() == TEXT
    assert dedup_key(plain) == "msg.24611234567890123"


def test_kefu_refuses_what_wechatpy_refuses() -> None:
    nonce, timestamp = "1234567", "1733380000"
    envelope = WeChatCrypto(TOKEN, AES_KEY, "wxanotherapp000000").encrypt_message(TEXT, nonce, timestamp)
    encrypted = field(xml_root(envelope.encode()), "Encrypt")
    assert encrypted
    with pytest.raises(Refused) as wrong_app:
        Crypto(encoding_aes_key=AES_KEY, app_id=APP_ID).decrypt(encrypted)
    other_key = "B" * 43
    with pytest.raises(Refused) as wrong_key:
        Crypto(encoding_aes_key=other_key, app_id=APP_ID).decrypt(encrypted)
    with pytest.raises(Refused) as not_base64:
        Crypto(encoding_aes_key=AES_KEY, app_id=APP_ID).decrypt("%%%")
    truncated = base64.b64encode(base64.b64decode(encrypted)[:-16]).decode()
    with pytest.raises(Refused) as short:
        Crypto(encoding_aes_key=AES_KEY, app_id=APP_ID).decrypt(truncated)
    assert (wrong_app.value.error, wrong_key.value.status, not_base64.value.status) == ("wrong_app", 400, 400)
    assert short.value.status == 400


def test_the_replay_window_and_hostile_xml() -> None:
    now = time.time()
    check_fresh(str(int(now) - 10), now=now, window=300)
    with pytest.raises(Refused) as stale:
        check_fresh(str(int(now) - 3600), now=now, window=300)
    assert stale.value.error == "stale_request"
    with pytest.raises(Refused) as bomb:
        xml_root(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml>&a;</xml>')
    assert bomb.value.status == 400


def test_events_dedup_on_sender_and_time() -> None:
    event = b"<xml><FromUserName>oUser123</FromUserName><CreateTime>1733380000</CreateTime><MsgType>event</MsgType></xml>"
    again = dedup_key(event)
    assert again.startswith("event.") and again == dedup_key(event)
    assert again != dedup_key(event.replace(b"1733380000", b"1733380001"))
