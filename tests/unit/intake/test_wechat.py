from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake.domain.errors import MissingContent, NotARequest, UnparseablePayload
from services.intake.domain.parsers.wechat import parse_wechat
from tests.unit.intake.conftest import sample


def test_text_message(ctx) -> None:
    r = parse_wechat(sample("wechat", "text.xml"), ctx)
    assert r.body == "你好，我的快递三天了还没到，单号 YT8812345678"
    assert r.contact.wechat_openid == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert r.source_id == "23946237846238746"
    assert r.received_at == datetime.fromtimestamp(1763949600, UTC)


def test_voice_uses_recognition(ctx) -> None:
    r = parse_wechat(sample("wechat", "voice_recognition.xml"), ctx)
    assert r.body == "家里的热水器漏电了，手被电了一下。"


def test_voice_without_recognition_keeps_the_media_as_attachment(ctx) -> None:
    r = parse_wechat(sample("wechat", "voice_no_recognition.xml"), ctx)
    assert r.body == "" and r.attachments[0].name == "media_id_voice_2"
    assert r.attachments[0].content_type == "audio/speex"


def test_image_is_an_attachment(ctx) -> None:
    r = parse_wechat(sample("wechat", "image.xml"), ctx)
    assert r.attachments[0].url == "http://mmbiz.qpic.cn/mmbiz_jpg/abc/0"


def test_subscribe_event_is_not_a_request(ctx) -> None:
    with pytest.raises(NotARequest, match="subscribe"):
        parse_wechat(sample("wechat", "event_subscribe.xml"), ctx)


@pytest.mark.parametrize("name", ["xxe.xml", "billion_laughs.xml"])
def test_entities_and_dtds_are_refused(ctx, name: str) -> None:
    with pytest.raises(UnparseablePayload, match="not allowed"):
        parse_wechat(sample("wechat", name), ctx)


def test_malformed_xml_is_unparseable(ctx) -> None:
    with pytest.raises(UnparseablePayload, match="well-formed"):
        parse_wechat(sample("wechat", "malformed.xml"), ctx)


def test_text_without_msgid_is_missing_content(ctx) -> None:
    raw = b"<xml><FromUserName>oX</FromUserName><MsgType>text</MsgType><Content>hi</Content></xml>"
    with pytest.raises(MissingContent, match="MsgId"):
        parse_wechat(raw, ctx)
